"""`linli bench webhook`: its checks can fail, and a short run on this setup meets the guarantees.

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

from bot.bench import check_stored
from storage.models import Ticket

from tests.conftest import uses_postgres


def _ticket(id_: int, number: str, openid: str) -> dict:
    now = datetime(2026, 12, 1, 8, 0)
    return dict(id=id_, number=number, openid=openid, text="路灯坏了", category="facilities", confidence=0.9,
                created_at=now, updated_at=now)


async def test_the_check_counts_receipts_without_a_ticket_and_residents_with_two(database_url, engine):
    async with engine.begin() as conn:
        await conn.execute(insert(Ticket.__table__), [_ticket(1, "N1", "r1"), _ticket(2, "N2", "r2"),
                                                      _ticket(3, "N3", "r2"), _ticket(4, "N4", "r3")])
    assert await check_stored(database_url, {"N1", "N2", "N4"}) == (0, 1)
    assert await check_stored(database_url, {"N1", "N9", "N8"}) == (2, 1)
    async with engine.begin() as conn:
        await conn.execute(Ticket.__table__.delete().where(Ticket.id == 3))
    assert await check_stored(database_url, set()) == (0, 0)


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
        assert summary[f"{name}_startup_s"] > 0 and summary[f"{name}_rss_mb"] > 0
    assert summary["lost"] == 0 and summary["duplicates"] == 0
