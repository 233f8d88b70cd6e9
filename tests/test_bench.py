"""`linli bench webhook` and `linli bench claims`: their checks can fail, and short runs on this setup meet
the guarantees.

The speed figures themselves are the benchmark's business (README), not a test's: a timed test on a shared
machine would only measure the machine."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime

import pytest
from sqlalchemy import insert

from bot.bench import check_stored, seed_community
from storage.models import Ticket, Wish

from tests.conftest import uses_postgres


def _ticket(id_: int, number: str, openid: str) -> dict:
    now = datetime(2026, 12, 1, 8, 0)
    return dict(id=id_, number=number, openid=openid, text="路灯坏了", category="facilities", confidence=0.9,
                created_at=now, updated_at=now)


def _wish(id_: int, number: str, openid: str) -> dict:
    now = datetime(2026, 12, 1, 8, 0)
    return dict(id=id_, number=number, openid=openid, community_id=1, household_id=id_ - 10, building_id=1,
                text="想请人换灯泡", public_text="想请人换灯泡", status="submitted", created_at=now, updated_at=now,
                review_due=now)


async def test_the_check_counts_receipts_without_a_ticket_and_residents_with_two(database_url, engine):
    await seed_community(database_url, 3)
    async with engine.begin() as conn:
        await conn.execute(insert(Ticket.__table__), [_ticket(1, "N1", "r1"), _ticket(2, "N2", "r2"),
                                                      _ticket(3, "N3", "r2"), _ticket(4, "N4", "r3")])
        await conn.execute(insert(Wish.__table__), [_wish(11, "W1", "w1"), _wish(12, "W2", "w2"),
                                                    _wish(13, "W3", "w2")])
    assert await check_stored(database_url, {"N1", "N2", "N4", "W1"}) == (0, 2, 3)  # r2 and w2 have two
    assert await check_stored(database_url, {"N1", "N9", "W8"}) == (2, 2, 3)
    async with engine.begin() as conn:
        await conn.execute(Ticket.__table__.delete().where(Ticket.id == 3))
        await conn.execute(Wish.__table__.delete().where(Wish.id == 13))
    assert await check_stored(database_url, set()) == (0, 0, 2)


@pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed (apt-get install wrk; .ci/run does)")
def test_a_short_benchmark_run_loses_nothing_and_duplicates_nothing(request, tmp_path):
    """The whole benchmark in miniature: every server starts, wrk's signed pushes are answered without
    errors, every returned tracking number is in the database and no retry made a second ticket."""
    command = [sys.executable, "-m", "bot.cli", "bench", "webhook", "--duration", "2", "--slice", "1",
               "--warmup", "1"]
    if uses_postgres():
        command += ["--pg", os.environ["DATABASE_URL"], "--redis", request.getfixturevalue("redis_url")]
    else:
        command.append("--skip-pg")
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    setups = ["sqlite", "pg"] if uses_postgres() else ["sqlite"]
    assert summary["bare_rps"] > 0 and len(summary["bare_slices_rps"]) == 2 * len(setups)
    for name in setups:
        assert summary[f"{name}_rps"] > 0 and 0 < summary[f"{name}_ratio"] < 1
        assert summary[f"{name}_errors"] == 0
        assert summary[f"{name}_receipts"] > 0  # else lost = 0 would prove nothing
        assert summary[f"{name}_wishes"] > 0  # the mix's wishes reached the wish use case
        assert summary[f"{name}_startup_s"] > 0 and summary[f"{name}_rss_mb"] > 0
    assert summary["lost"] == 0 and summary["duplicates"] == 0


def test_a_small_claim_burst_gives_each_wish_one_claim_and_every_member_an_answer(request, tmp_path):
    """`linli bench claims` in miniature: 60 members at once on 20 wishes, through the webhook."""
    command = [sys.executable, "-m", "bot.cli", "bench", "claims", "--members", "60", "--wishes", "20"]
    if uses_postgres():
        command += ["--pg", os.environ["DATABASE_URL"], "--redis", request.getfixturevalue("redis_url")]
    else:
        command.append("--skip-pg")
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    for name in ["sqlite", "pg"] if uses_postgres() else ["sqlite"]:
        result = summary[name]
        assert (result["won"], result["taken"], result["answered"]) == (20, 40, 60)
        assert (result["wishes_claimed_once"], result["wishes_unclaimed"], result["wishes_claimed_twice"]) == (20, 0, 0)
    assert summary["ok"] is True



def test_the_claim_check_fails_on_a_wish_claimed_twice_or_a_member_left_without_an_answer():
    from bot.bench_claims import passed

    good = dict(answered=60, won=20, taken=40, late=0, wishes_claimed_once=20)
    assert passed(good, 60, 20)
    for bad in ({"wishes_claimed_once": 19}, {"answered": 59}, {"won": 21, "taken": 39}, {"late": 1},
                {"taken": 39}):
        assert not passed({**good, **bad}, 60, 20)
