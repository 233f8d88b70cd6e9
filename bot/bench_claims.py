"""`linli bench claims`: a wish wall opening draws a burst (one city reports 1,080 wishes claimed in one
morning). 1,000 Party members send `认领 编号` for 300 approved wishes at the same moment, through the webhook
of one `linli serve` process, on the embedded default and on PostgreSQL + Redis.

Checks: every wish has exactly one claim (the others were told it is taken), and every member got an answer,
within WeChat's 5 s. The community is seeded in bulk (a resident per wish, the members registered there) and
the wishes are made and approved through the use cases, so their rows are what the chat would have made.
"""
from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bot.bench import (TOKEN, WISHERS, WISHES, add_setup_options, fresh_pg_database, free_port, seed_community,
                       start_server, stop)
from bot.signing import signature, xml_message

MEMBERS = "bench-m-"  # + 1 … n
WECHAT_WAIT_S = 5  # WeChat gives up on a reply after this long (and retries)
WON, TAKEN = "认领成功", "已经被其他党员认领"
_CONTENT = re.compile(r"<Content><!\[CDATA\[(.*?)\]\]></Content>", re.S)


async def seed(database_url: str, wishes: int, members: int) -> list[str]:
    """The community, its members, and `wishes` approved wishes (one per resident): their numbers."""
    from bot.app import FIRST_TICKET_ID
    from handlers import wishes as use
    from handlers.context import utcnow
    from storage.db import create_engine, sessionmaker
    from storage.ids import IdAllocator
    from storage.writer import Writer

    await seed_community(database_url, wishes, members, member_prefix=MEMBERS)
    engine, now = create_engine(database_url), utcnow()
    sessions, writer = sessionmaker(engine), Writer(engine)
    ids = IdAllocator(engine, "tickets", start=FIRST_TICKET_ID)  # the service's sequence: one number space

    async def decide(use_case, *args, **kw):
        async with sessions() as session:
            return await use.commit(writer, await use_case(session, *args, **kw))

    try:
        numbers = []
        for i in range(1, wishes + 1):
            submitted = await decide(use.submit, ids, f"{WISHERS}{i}", WISHES[i % len(WISHES)], now)
            approved = await decide(use.review, use.CLI_ACTOR, submitted.number, now, approve=True, kind="service")
            if approved.code != "approved":
                raise RuntimeError(f"seeding wish {i}: {submitted.reply} / {approved.reply}")
            numbers.append(submitted.number)
        return numbers
    finally:
        await writer.stop()
        await ids.settled()
        await engine.dispose()


async def burst(port: int, numbers: list[str], members: int) -> list[tuple[int, float, str]]:
    """Every member claims a wish (member i the wish i mod len(numbers)), all sent at once: (HTTP status,
    seconds to the answer, the reply's text) per member."""
    import aiohttp

    ts, msg_id = str(int(time.time())), int(time.time()) * 10_000
    pushes = []
    for i in range(1, members + 1):
        nonce = f"claim{i}"  # a signed query per body: the service refuses one seen with another body
        body = xml_message({"ToUserName": "gh_bench", "FromUserName": f"{MEMBERS}{i}", "CreateTime": int(ts),
                            "MsgType": "text", "Content": f"认领 {numbers[i % len(numbers)]}", "MsgId": msg_id + i})
        pushes.append((f"/wechat?signature={signature(TOKEN, ts, nonce)}&timestamp={ts}&nonce={nonce}",
                       body.encode()))
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=60)) as http:
        async def claim(query: str, body: bytes) -> tuple[int, float, str]:
            started = time.perf_counter()
            async with http.post(base + query, data=body, headers={"Content-Type": "text/xml"}) as resp:
                text = await resp.text()
            found = _CONTENT.search(text)
            return resp.status, time.perf_counter() - started, found.group(1) if found else ""

        return await asyncio.gather(*(claim(q, b) for q, b in pushes))


async def claims_per_wish(database_url: str, numbers: list[str]) -> dict[str, int]:
    """number -> members in the wish's current claim."""
    from sqlalchemy import func, select

    from storage.db import create_engine
    from storage.models import Wish, WishClaimer

    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(Wish.number, func.count(WishClaimer.id)).outerjoin(WishClaimer, (
                    WishClaimer.wish_id == Wish.id) & (WishClaimer.round == Wish.claim_round)
                    & WishClaimer.released_at.is_(None)).where(Wish.number.in_(numbers)).group_by(Wish.number))
            counts = dict(rows.all())
    finally:
        await engine.dispose()
    return {number: counts.get(number, 0) for number in numbers}


def summarise(answers: list[tuple[int, float, str]], claims: dict[str, int], seconds: float) -> dict:
    latencies = sorted(t for _, t, _ in answers)
    won = sum(WON in text for _, _, text in answers)
    taken = sum(TAKEN in text for _, _, text in answers)
    return {
        "answered": sum(status == 200 and bool(text) for status, _, text in answers),
        "won": won, "taken": taken, "other": len(answers) - won - taken,
        "late": sum(t > WECHAT_WAIT_S for t in latencies),
        "wishes_claimed_once": sum(n == 1 for n in claims.values()),
        "wishes_unclaimed": sum(n == 0 for n in claims.values()),
        "wishes_claimed_twice": sum(n > 1 for n in claims.values()),
        "seconds": round(seconds, 2),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
        "examples_other": [text[:80] for _, _, text in answers if WON not in text and TAKEN not in text][:3],
    }


def passed(result: dict, members: int, wishes: int) -> bool:
    return (result["answered"] == members and result["won"] == wishes == result["wishes_claimed_once"]
            and result["taken"] == members - wishes and result["late"] == 0)


def run_setup(name: str, args, workdir: Path) -> dict:
    from storage.migrate import upgrade

    env = {"LINLI_WECHAT_TOKEN": TOKEN, "LINLI_WECHAT_APPID": "", "LINLI_WECHAT_SECRET": "",
           "LINLI_WECHAT_AES_KEY": "", "PYTHONUNBUFFERED": "1", "REDIS_URL": ""}
    drop = None
    if name == "pg":
        url, drop = fresh_pg_database(args.pg)
        env["REDIS_URL"] = args.redis
    else:
        url = f"sqlite:///{workdir}/claims.db"
    env["DATABASE_URL"] = url
    try:
        upgrade(url)
        numbers = asyncio.run(seed(url, args.wishes, args.members))
        port = free_port()
        proc, _ = start_server([sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                               env, port, workdir / f"claims-{name}.log")
        try:
            started = time.perf_counter()
            answers = asyncio.run(burst(port, numbers, args.members))
            seconds = time.perf_counter() - started
        finally:
            stop(proc)
        return summarise(answers, asyncio.run(claims_per_wish(url, numbers)), seconds)
    finally:
        if drop is not None:
            drop()


def bench_claims(args) -> int:
    setups = ["sqlite"] + ([] if args.skip_pg else ["pg"])
    summary = {"members": args.members, "wishes": args.wishes}
    with tempfile.TemporaryDirectory(prefix="linli-claims-") as tmp:
        for name in setups:
            result = summary[name] = run_setup(name, args, Path(tmp))
            print(f"{name}: {args.members} members, {args.wishes} wishes: {result['won']} won, {result['taken']} "
                  f"told it was taken, {result['other']} other answers, {result['answered']} answered, "
                  f"{result['late']} later than {WECHAT_WAIT_S} s; wishes claimed once {result['wishes_claimed_once']}, "
                  f"unclaimed {result['wishes_unclaimed']}, twice or more {result['wishes_claimed_twice']}; "
                  f"{result['seconds']} s, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
                  f"max {result['max_ms']} ms", flush=True)
    summary["ok"] = all(passed(summary[name], args.members, args.wishes) for name in setups)
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if summary["ok"] else 1


def register(subparsers) -> None:
    claims = subparsers.add_parser("claims", help="党员同时认领心愿的高峰 / a burst of Party members claiming wishes")
    claims.add_argument("--members", type=int, default=1000, help="Party members, each claiming once (default 1000)")
    claims.add_argument("--wishes", type=int, default=300, help="approved wishes they claim (default 300)")
    add_setup_options(claims, skip_help="only the embedded default")
    claims.set_defaults(run=bench_claims)
