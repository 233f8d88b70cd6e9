"""`linli bench vote`: how long counting a large vote takes (the webhook part, 10,000 owners voting through
the webhook beside the bare server, comes with the chat wiring).

Two timings: the pure tally (handlers.tally) of N ballots plus a tenth replaced, over a roll of N owners of
whom a tenth hold two flats; and the close's count from a database (reading the roll and the ballots of an
SQLite file, then the tally), as `linli vote close` does it."""
from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from handlers import tally

RULE = tally.rule("art278-ordinary")


def synthetic_vote(n: int, seed: int = 1) -> tuple[list[tally.Part], list[tally.Ballot]]:
    """n owners (every tenth with a second flat), n ballots and a tenth of them replaced later."""
    rnd = random.Random(seed)
    parts = [tally.Part(f"o{i}", Decimal(rnd.randint(4000, 15000)) / 100, f"{i % 40}栋") for i in range(n)]
    parts += [tally.Part(f"o{i}", Decimal("60.50"), f"{i % 40}栋") for i in range(0, n, 10)]
    start = datetime(2026, 12, 1)
    cast = [tally.Ballot(f"o{i}", rnd.choice((1, 1, 2, 3)), start + timedelta(seconds=i), f"r{i:07d}")
            for i in range(n)]
    cast += [tally.Ballot(f"o{i}", 1, start + timedelta(seconds=n + i), f"s{i:07d}") for i in range(0, n, 10)]
    return parts, cast


def time_tally(n: int, repeat: int = 3) -> tuple[float, tally.Result]:
    """The best of `repeat` runs, in seconds."""
    parts, cast = synthetic_vote(n)
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = tally.tally(RULE, 3, parts, cast)
        best = min(best, time.perf_counter() - started)
    return best, result


async def time_db_count(n: int) -> float:
    """Seconds to read a vote of n owners from SQLite and count it (what the close does)."""
    from sqlalchemy import insert

    from handlers.votes import result_of
    from storage.db import create_engine, sessionmaker
    from storage.migrate import upgrade_async
    from storage.models import Ballot, Community, Proposal, Vote, VotePart, VoteVoter

    parts, cast = synthetic_vote(n)
    final = tally.latest(cast)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        await upgrade_async(url)
        engine = create_engine(url, sqlite_synchronous="NORMAL")
        now = datetime(2026, 12, 1)
        async with engine.begin() as conn:
            await conn.execute(insert(Community).values(id=1, code="bench", name="bench"))
            await conn.execute(insert(Proposal).values(id=10000, number="100000", title="bench", source="committee",
                                                       status="voting", created_at=now, text="", scope="community",
                                                       reason=""))
            await conn.execute(insert(Vote).values(
                id=10001, number="100013", proposal_id=10000, community_id=1, title="bench", options='["同意","反对","弃权"]',
                unit="owners", rule=RULE.name, status="closed", opened_at=now, closes_at=now, created_by="bench",
                scope="community", quorum="", approval="", secret=False, advisory=False, convention="",
                objection_days=0))
            await conn.execute(insert(VoteVoter), [dict(vote_id=10001, voter=v, open=False) for v in final])
            await conn.execute(insert(VotePart), [dict(vote_id=10001, part=f"p{i}", voter=p.voter, area=p.area)
                                                  for i, p in enumerate(parts)])
            await conn.execute(insert(Ballot), [dict(vote_id=10001, voter=b.voter, choice=b.choice, picks="",
                                                     receipt=b.receipt, cast_at=b.at, channel="wechat")
                                                for b in final.values()])
        try:
            async with sessionmaker(engine)() as session:
                vote = await session.get(Vote, 10001)
                started = time.perf_counter()
                result = await result_of(session, vote)
                elapsed = time.perf_counter() - started
            assert result.ballots == n
            return elapsed
        finally:
            await engine.dispose()


def register(bench_commands) -> None:
    vote = bench_commands.add_parser("vote", help="大规模表决计票的速度 / time the tally of a large vote")
    vote.add_argument("--ballots", type=int, default=100_000)
    vote.add_argument("--skip-db", action="store_true", help="only the pure tally")
    vote.set_defaults(run=run_bench_vote)


def run_bench_vote(args) -> int:
    seconds, result = time_tally(args.ballots)
    report = {"ballots": args.ballots, "replacements": len(range(0, args.ballots, 10)),
              "tally_s": round(seconds, 4), "passed": result.passed}
    if not args.skip_db:
        report["sqlite_read_and_tally_s"] = round(asyncio.run(time_db_count(args.ballots)), 4)
    print(json.dumps(report, ensure_ascii=False))
    return 0
