"""Group commit: many handlers' writes share one transaction, and each learns when its own is durable.

A webhook may only send a receipt after the ticket is committed. One commit per message would cap the
service at the disk's fsync rate; instead a single writer task takes every unit queued while the previous
commit was running and commits them together. A unit whose dedupe key is already stored is reported as a
duplicate (a retry of a push Redis forgot), and the others in its batch still commit.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import operator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Executable, Table, bindparam, insert, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

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
        self._transactions = _Transactions(engine)

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
        await self._transactions.close()

    async def write(self, unit: Unit) -> None:
        """Return once the unit is committed; raise Duplicate for a stored dedupe key, Conflict for a lost
        guard, or the database's error."""
        await self.submit(unit)

    def submit(self, unit: Unit) -> asyncio.Future[None]:
        """Queue the unit; the future settles as `write` returns or raises."""
        self.start()
        fut = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((unit, fut))
        return fut

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
                    _settle(fut, exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[tuple[Unit, asyncio.Future]]) -> None:
        plain = [item for item in batch if not item[0].guards]
        if plain:
            units = [u for u, _ in plain]
            try:
                # Stored keys are rare (a retry after Redis forgot it): insert without looking for them first,
                # and let the key's unique index refuse the batch if there is one.
                outcomes = await self._transactions.run(_store, units, False)
            except IntegrityError:
                try:
                    outcomes = await self._transactions.run(_store, units, True)
                except IntegrityError:
                    # Another process stored one of these keys between our check and our insert: one by one.
                    outcomes = [await self._one(unit) for unit in units]
            for (_, fut), outcome in zip(plain, outcomes):
                _settle(fut, outcome)
        for unit, fut in batch:
            if unit.guards:  # each in a transaction of its own, so a lost guard undoes only its unit
                _settle(fut, await self._one(unit))

    async def _one(self, unit: Unit) -> Exception | None:
        try:
            return (await self._transactions.run(_store, [unit], True))[0]
        except (IntegrityError, Conflict) as exc:
            return exc


def _settle(fut: asyncio.Future, outcome: Exception | None) -> None:
    if fut.done():  # the caller gave up waiting
        return
    if outcome is None:
        fut.set_result(None)
    else:
        fut.set_exception(outcome)


class _Transactions:
    """Runs a synchronous function inside one transaction.

    PostgreSQL: on the async engine (asyncpg is natively asynchronous), on a connection the writer holds
    between commits. SQLite: on a synchronous engine in one writer thread, so a whole group commit costs one
    thread hop instead of one per statement.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._held = self._sync_engine = self._executor = None
        if engine.dialect.name == "sqlite":
            from concurrent.futures import ThreadPoolExecutor

            from storage.db import create_sync_sqlite_engine

            self._sync_engine = create_sync_sqlite_engine(engine)
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="linli-writer")
        else:
            from storage.db import HeldConnections

            self._held = HeldConnections(engine, keep=1)  # one writer task: one transaction at a time

    async def run(self, fn, *args):
        if self._held is not None:
            async with self._held.connection() as conn, conn.begin():
                return await conn.run_sync(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._in_transaction, fn, args)

    def _in_transaction(self, fn, args):
        with self._sync_engine.begin() as conn:
            return fn(conn, *args)

    async def close(self) -> None:
        if self._held is not None:
            await self._held.close()
        else:
            self._executor.shutdown(wait=True)
            self._sync_engine.dispose()


# Built once (building a statement costs more than a small insert).
_STORED_KEYS = select(InboundMessage.dedupe_key).where(
    InboundMessage.dedupe_key.in_(bindparam("keys", expanding=True)))


def _store(conn: Connection, units: list[Unit], check_keys: bool = True) -> list[Exception | None]:
    """Write the units in the caller's transaction: a unit whose dedupe key is stored already (or repeated in
    this batch) becomes Duplicate and writes nothing; a guard that changes no row raises Conflict. Without
    `check_keys`, such a unit makes the inbound insert raise IntegrityError instead."""
    keys = [u.dedupe_key for u in units if u.dedupe_key] if check_keys else []
    stored = set()
    if keys:
        stored = set(conn.execute(_STORED_KEYS, {"keys": keys}).scalars())
    outcomes: list[Exception | None] = []
    fresh = []
    for unit in units:
        if unit.dedupe_key and unit.dedupe_key in stored:
            outcomes.append(Duplicate(unit.dedupe_key))
            continue
        if unit.dedupe_key:
            stored.add(unit.dedupe_key)
        outcomes.append(None)
        fresh.append(unit)
    for unit in fresh:
        for guard in unit.guards:
            if conn.execute(guard).rowcount != 1:
                raise Conflict()
        for stmt in unit.deletes:
            conn.execute(stmt)
    # Rows of one table may name different columns; executemany needs one shape per call (the columns as the
    # row names them: rows made alike name them alike).
    groups: dict[tuple[Table, tuple[str, ...]], list[dict]] = {}
    for unit in fresh:
        for table, row in unit.inserts:
            key = (table, tuple(row))
            if (group := groups.get(key)) is None:
                groups[key] = [row]
            else:
                group.append(row)
    for (table, shape), rows in sorted(groups.items(), key=lambda item: _TABLE_ORDER[item[0][0].name]):
        _insert(conn, table, shape, rows)
    for unit in fresh:
        for stmt in unit.updates:
            conn.execute(stmt)
    return outcomes


def _insert(conn: Connection, table: Table, shape: tuple[str, ...], rows: list[dict]) -> None:
    """executemany of an insert of these columns. SQLAlchemy's own executemany builds and processes a
    parameter dict per row; here the statement is compiled once per shape, each row becomes a tuple in one C
    call, and only the values whose type needs it are converted (SQLite's dates and booleans)."""
    plan = _insert_plan(conn.dialect, table, shape)
    if plan is None:
        conn.execute(insert(table), rows)
        return
    sql, defaults, values_of, converters = plan
    params = [values_of({**defaults, **row}) if defaults else values_of(row) for row in rows]
    if converters:
        for n, values in enumerate(params):
            values = list(values)
            for i, convert in converters:
                values[i] = convert(values[i])
            params[n] = tuple(values)
    conn.exec_driver_sql(sql, params)


@functools.cache
def _insert_plan(dialect, table: Table, shape: tuple[str, ...]):
    """(SQL, column defaults, row -> parameter tuple, (position, converter) pairs), or None when a column's
    default is not a plain value (then SQLAlchemy's own executemany computes it)."""
    compiled = insert(table).compile(dialect=dialect, column_keys=list(shape))
    names = compiled.positiontup
    defaults = {}
    for name in names:
        if name not in shape:
            default = table.c[name].default
            if default is None or not default.is_scalar:
                return None
            defaults[name] = default.arg
    converters = []
    for i, name in enumerate(names):
        impl = compiled.binds[name].type.dialect_impl(dialect)
        if (convert := impl.bind_processor(dialect)) is not None:
            converters.append((i, _sqlite_datetime(convert) if _is_default_sqlite_datetime(impl) else convert))
    getter = operator.itemgetter(*names)
    values_of = getter if len(names) > 1 else (lambda row: (getter(row),))
    return compiled.string, defaults, values_of, tuple(converters)


def _is_default_sqlite_datetime(impl) -> bool:
    return type(impl) is sqlite.DATETIME and impl._storage_format == sqlite.DATETIME._storage_format


_last_date: tuple[datetime | None, str] = (None, "")  # (a date, its text): the writer thread's one-entry memo


def _sqlite_datetime(convert):
    """SQLAlchemy's SQLite DATETIME format, "2026-12-01 08:30:00.000000", from isoformat (a third less); a
    unit's rows mostly carry the same `now` (a ticket's row, its events, its notices), so the last date's text
    is remembered. Anything but a naive datetime goes SQLAlchemy's way."""

    def fast(value):
        global _last_date
        last = _last_date
        if value is last[0]:
            return last[1]
        if value.__class__ is datetime and value.tzinfo is None:
            text = value.isoformat(" ", "microseconds")
            _last_date = (value, text)
            return text
        return convert(value)

    return fast
