"""The scheduler: runs the periodic jobs (reminders, escalations, closings) in one process of many.

Leadership is a row in `leases` named "scheduler": a process takes it when it is free or expired, renews it
while it holds it, and only the holder runs jobs. Taking and renewing are conditional writes (UPDATE ...
WHERE holder = me OR expires_at < now; INSERT when the row does not exist yet, which a unique key settles),
so on SQLite and PostgreSQL alike at most one process wins each round.

A leader that stalls longer than the lease (a long GC pause, a slow job) can overlap with its successor for
one round. That is harmless because every job is idempotent (see handlers/followup.py): a second run of the
same job finds nothing left to change. The lease compares the processes' clocks, so keep them in sync (NTP);
a skew well below lease_s only shortens or lengthens a takeover.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import Lease

log = logging.getLogger(__name__)
_L = Lease.__table__
LEASE_NAME = "scheduler"
Job = tuple[str, float, Callable[[datetime], Awaitable[object]]]


class Scheduler:
    def __init__(self, engine: AsyncEngine, *, holder: str, now: Callable[[], datetime], jobs: list[Job],
                 lease_s: float = 30) -> None:
        self._engine, self.holder, self._now, self._jobs = engine, holder, now, jobs
        self._lease = timedelta(seconds=lease_s)
        self._last_run: dict[str, datetime] = {}  # per process: a new leader runs every job at once

    async def run_forever(self, stop: asyncio.Event, tick_s: float | None = None) -> None:
        """Tick until `stop` is set (by default three times per lease), then hand the lease back."""
        tick_s = tick_s if tick_s is not None else self._lease.total_seconds() / 3
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler tick failed")
            try:
                await asyncio.wait_for(stop.wait(), tick_s)
            except TimeoutError:
                pass
        await self.release()

    async def tick(self) -> bool:
        """Take or renew the lease; as the leader, run the jobs that are due. Returns whether we lead."""
        if not await self._take_lease():
            return False
        for name, interval_s, job in self._jobs:
            now = self._now()
            last = self._last_run.get(name)
            if last is not None and now - last < timedelta(seconds=interval_s):
                continue
            self._last_run[name] = now
            try:
                result = await job(now)
                if result:
                    log.info("job %s: %s", name, result)
            except Exception:
                log.exception("job %s failed; it runs again in %g s", name, interval_s)
        return True

    async def release(self) -> None:
        """Let another process take over at once (on a clean stop) instead of after the lease runs out."""
        async with self._engine.begin() as conn:
            await conn.execute(update(_L).where(_L.c.name == LEASE_NAME, _L.c.holder == self.holder)
                               .values(expires_at=self._now() - self._lease))

    async def _take_lease(self) -> bool:
        now = self._now()
        async with self._engine.begin() as conn:
            renewed = await conn.execute(update(_L).where(
                _L.c.name == LEASE_NAME, or_(_L.c.holder == self.holder, _L.c.expires_at < now))
                .values(holder=self.holder, expires_at=now + self._lease))
            if renewed.rowcount == 1:
                return True
            if (await conn.execute(select(_L.c.name).where(_L.c.name == LEASE_NAME))).first() is not None:
                return False  # another process inserted it first
        try:
            async with self._engine.begin() as conn:  # the very first tick of a fresh database
                await conn.execute(insert(_L).values(name=LEASE_NAME, holder=self.holder, expires_at=now + self._lease))
            return True
        except IntegrityError:
            return False  # another process inserted it first
