"""The scheduler's lease: one leader at a time among processes, taken over when it expires."""
from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlalchemy import select

from bot.scheduler import LEASE_NAME, Scheduler
from storage.db import create_engine
from storage.migrate import upgrade_async
from storage.models import Lease
from tests.conftest import TravellingNow

START = datetime(2026, 11, 22, 2, 0)


@pytest.fixture
def now() -> TravellingNow:
    return TravellingNow(START)


@pytest.fixture
async def engines(database_url):
    await upgrade_async(database_url)
    pair = create_engine(database_url), create_engine(database_url)
    yield pair
    for engine in pair:
        await engine.dispose()


@pytest.fixture
def runs() -> list[tuple[str, str, datetime]]:
    return []


@pytest.fixture
def make_scheduler(engines, now, runs):
    def make(holder: str, engine_index: int) -> Scheduler:
        def job(name: str):
            async def run(at: datetime) -> int:
                runs.append((holder, name, at))
                return 0
            return run

        return Scheduler(engines[engine_index], holder=holder, now=now, lease_s=30,
                         jobs=[("often", 10, job("often")), ("rarely", 60, job("rarely"))])

    return make


async def lease_holder(engine) -> str | None:
    async with engine.connect() as conn:
        return (await conn.execute(select(Lease.holder).where(Lease.name == LEASE_NAME))).scalar_one_or_none()


async def test_only_one_process_leads_and_runs_jobs_when_due(make_scheduler, engines, now, runs):
    a, b = make_scheduler("app-1", 0), make_scheduler("app-2", 1)
    leaders = await asyncio.gather(a.tick(), b.tick())  # a fresh database: both try to insert the lease
    assert sorted(leaders) == [False, True]
    leader, other = (a, b) if leaders[0] else (b, a)
    assert {(h, name) for h, name, _ in runs} == {(leader.holder, "often"), (leader.holder, "rarely")}

    runs.clear()
    for _ in range(6):  # a minute of ticks every 10 s: the leader renews; "rarely" is not due again yet
        now.travel(seconds=10)
        assert await asyncio.gather(leader.tick(), other.tick()) == [True, False]
    assert [name for _, name, _ in runs] == ["often"] * 5 + ["often", "rarely"]
    assert {h for h, _, _ in runs} == {leader.holder}
    assert await lease_holder(engines[0]) == leader.holder


async def test_the_other_takes_over_when_the_lease_expires(make_scheduler, engines, now, runs):
    a, b = make_scheduler("app-1", 0), make_scheduler("app-2", 1)
    assert await a.tick() and not await b.tick()
    now.travel(seconds=29)  # a went quiet (killed); its lease still holds
    assert not await b.tick()
    now.travel(seconds=2)
    runs.clear()
    assert await b.tick()
    assert {h for h, _, _ in runs} == {"app-2"}  # the new leader runs every job at once
    assert not await a.tick()  # back from the dead: it follows now
    assert await lease_holder(engines[0]) == "app-2"


async def test_a_clean_stop_hands_the_lease_over_at_once(make_scheduler, now, runs):
    a, b = make_scheduler("app-1", 0), make_scheduler("app-2", 1)
    stop = asyncio.Event()
    task = asyncio.create_task(a.run_forever(stop, tick_s=0.01))
    await asyncio.sleep(0.05)
    assert not await b.tick()
    stop.set()
    await asyncio.wait_for(task, 2)
    assert await b.tick()


async def test_a_failing_job_does_not_stop_the_others(engines, now):
    ran = []

    async def broken(_at: datetime) -> None:
        raise RuntimeError("boom")

    async def fine(at: datetime) -> None:
        ran.append(at)

    scheduler = Scheduler(engines[0], holder="app-1", now=now, jobs=[("broken", 1, broken), ("fine", 1, fine)])
    assert await scheduler.tick()
    assert ran == [START]
