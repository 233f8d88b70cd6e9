"""Group commit: many handlers' writes share one transaction, and each learns when its own is durable.

A webhook may only send a receipt after the ticket is committed. One commit per message would cap the
service at the disk's fsync rate; instead a single writer task takes every unit queued while the previous
commit was running and commits them together. A unit whose dedupe key is already stored is reported as a
duplicate (a retry of a push Redis forgot), and the others in its batch still commit.
"""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Executable, Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.models import Base, InboundMessage

log = logging.getLogger(__name__)
_TABLE_ORDER = {t.name: i for i, t in enumerate(Base.metadata.sorted_tables)}  # parents before children


@dataclass
class Unit:
    """The writes of one inbound message, all or nothing: deletes, inserts (grouped per table across the
    batch, parents first), then updates (which may refer to the rows just inserted).

    `guards` are conditional updates that must each change exactly one row (say, "accept this ticket
    if nobody has"); a unit with guards commits in a transaction of its own and fails with Conflict
    when a guard finds its row already changed by someone else.
    """

    dedupe_key: str | None = None
    inserts: list[tuple[Table, dict]] = field(default_factory=list)
    updates: list[Executable] = field(default_factory=list)
    deletes: list[Executable] = field(default_factory=list)
    guards: list[Executable] = field(default_factory=list)

    def add(self, model, **row) -> None:
        self.inserts.append((model.__table__, row))


class Duplicate(Exception):
    """The unit's dedupe key was already stored: it was a retry, nothing new was written."""


class Conflict(Exception):
    """A guard of the unit changed no row: someone else got there first. Nothing was written."""


class Writer:
    def __init__(self, engine: AsyncEngine, max_batch: int = 256) -> None:
        self.engine = engine
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Unit, asyncio.Future]] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="linli-writer")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def write(self, unit: Unit) -> None:
        """Return once the unit is committed; raise Duplicate for a stored dedupe key, or the DB error."""
        self.start()
        fut = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((unit, fut))
        await fut

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit(batch)
            except Exception as exc:  # the database is down: every unit of this batch learns it
                log.warning("group commit of %d units failed: %s", len(batch), exc)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[tuple[Unit, asyncio.Future]]) -> None:
        guarded = [item for item in batch if item[0].guards]
        if guarded:
            batch = [item for item in batch if not item[0].guards]
            for unit, fut in guarded:
                await self._commit_one(unit, fut)
            if not batch:
                return
        try:
            async with self.engine.begin() as conn:
                fresh = await _drop_stored(conn, batch)
                await _apply(conn, [u for u, _ in fresh])
        except IntegrityError:
            # Another process stored one of these keys between our check and our insert: go one by one.
            for unit, fut in batch:
                if not fut.done():
                    await self._commit_one(unit, fut)
            return
        for _, fut in fresh:
            if not fut.done():  # a caller may have given up waiting
                fut.set_result(None)

    async def _commit_one(self, unit: Unit, fut: asyncio.Future) -> None:
        try:
            async with self.engine.begin() as conn:
                if await _drop_stored(conn, [(unit, fut)]):
                    for guard in unit.guards:
                        if (await conn.execute(guard)).rowcount != 1:
                            raise Conflict()
                    await _apply(conn, [unit])
        except (IntegrityError, Conflict) as exc:
            if not fut.done():
                fut.set_exception(exc)
            return
        if not fut.done():
            fut.set_result(None)


async def _drop_stored(conn: AsyncConnection, batch):
    """Fail the units whose dedupe key is already stored, or repeated inside this batch; return the rest."""
    keys = [u.dedupe_key for u, _ in batch if u.dedupe_key]
    stored = set()
    if keys:
        col = InboundMessage.__table__.c.dedupe_key
        stored = set((await conn.execute(select(col).where(col.in_(keys)))).scalars())
    fresh = []
    for unit, fut in batch:
        if unit.dedupe_key and unit.dedupe_key in stored:
            if not fut.done():
                fut.set_exception(Duplicate(unit.dedupe_key))
            continue
        if unit.dedupe_key:
            stored.add(unit.dedupe_key)
        fresh.append((unit, fut))
    return fresh


async def _apply(conn: AsyncConnection, units: list[Unit]) -> None:
    for unit in units:
        for stmt in unit.deletes:
            await conn.execute(stmt)
    rows: dict[str, tuple[Table, list[dict]]] = {}
    for unit in units:
        for table, row in unit.inserts:
            rows.setdefault(table.name, (table, []))[1].append(row)
    for name in sorted(rows, key=_TABLE_ORDER.__getitem__):
        table, values = rows[name]
        # Rows of one table may name different columns; executemany needs one shape per call.
        by_shape: dict[tuple, list[dict]] = defaultdict(list)
        for v in values:
            by_shape[tuple(sorted(v))].append(v)
        for shaped in by_shape.values():
            await conn.execute(insert(table), shaped)
    for unit in units:
        for stmt in unit.updates:
            await conn.execute(stmt)
