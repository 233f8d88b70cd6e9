"""Storage: tracking numbers, id blocks, group commit, migrations and the shared-state stores."""
from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime

import pytest
from hypothesis import given, strategies as st
from sqlalchemy import func, select

from storage.db import PING_AFTER_IDLE_S
from storage.ids import IdAllocator, damm_check_digit, is_valid_ticket_number, ticket_number
from storage.models import Base, InboundMessage, Ticket
from storage.state import LockTimeout, MemoryState, RedisState
from storage.writer import Duplicate, Unit, Writer


@given(st.integers(min_value=10000, max_value=10**12))
def test_every_single_digit_error_is_caught(ticket_id):
    number = ticket_number(ticket_id)
    assert is_valid_ticket_number(number)
    for i, digit in enumerate(number):
        for wrong in "0123456789":
            if wrong != digit:
                assert not is_valid_ticket_number(number[:i] + wrong + number[i + 1:])


@given(st.integers(min_value=10000, max_value=10**12))
def test_every_adjacent_swap_is_caught(ticket_id):
    number = ticket_number(ticket_id)
    for i in range(len(number) - 1):
        if number[i] != number[i + 1]:
            assert not is_valid_ticket_number(number[:i] + number[i + 1] + number[i] + number[i + 2:])


def test_damm_known_value_and_junk():
    assert damm_check_digit(572) == 4  # the textbook example
    assert not any(is_valid_ticket_number(s) for s in ("", "5", "57a4", "５７２４", "-5724"))


async def test_id_allocators_in_parallel_never_hand_out_the_same_id(engine):
    allocators = [IdAllocator(engine, "tickets", start=10000, block=7) for _ in range(3)]
    ids = await asyncio.gather(*(a.next() for a in allocators for _ in range(40)))
    assert len(set(ids)) == len(ids) == 120 and min(ids) >= 10000


async def test_id_blocks_grow_in_a_burst_and_start_small_again_after_a_quiet_spell(engine):
    from storage.models import IdBlock

    async def reserved_up_to() -> int:
        async with engine.connect() as conn:
            return (await conn.execute(select(IdBlock.next_value).where(IdBlock.name == "x"))).scalar_one()

    t = [0.0]
    a = IdAllocator(engine, "x", start=1, block=10, max_block=40, busy_s=10, clock=lambda: t[0])
    assert [await a.next() for _ in range(110)] == list(range(1, 111))  # blocks of 10, 20, 40, 40 …
    await a.settled()
    assert await reserved_up_to() == 151  # … and the next 40, reserved once half of the last was used
    t[0] = 100.0  # longer than busy_s since the last reservation
    assert [await a.next() for _ in range(21)] == list(range(111, 132))  # the block in hand, past its half
    await a.settled()
    assert await reserved_up_to() == 161  # the next one, reserved ahead: a block of 10 again


async def test_no_id_waits_for_a_reservation_once_traffic_flows(engine):
    """The next block is reserved while half of the current one is left: a ticket never waits for it (each
    such wait held up every ticket behind it by a transaction, under load hundreds of milliseconds)."""
    import time

    slow = IdAllocator(engine, "slow", start=1, block=10, max_block=10)
    reserve = slow._reserve

    async def slow_reserve(size):
        await asyncio.sleep(0.02)
        return await reserve(size)

    slow._reserve = slow_reserve
    waits = []
    for _ in range(100):  # ten blocks, one id every 5 ms: half a block is 25 ms, a reservation 20 ms and more
        started = time.perf_counter()
        await slow.next()
        waits.append(time.perf_counter() - started)
        await asyncio.sleep(0.005)
    await slow.settled()
    assert waits[0] >= 0.02  # the first block: nothing to take yet
    assert max(waits[1:]) < 0.015, waits


async def test_a_pooled_connection_that_died_while_idle_is_replaced_unseen(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's connection pool (SQLite has no server connection to lose)")
    from sqlalchemy import text

    from storage.db import create_engine

    async with engine.connect() as conn:
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    admin = create_engine(engine.url.render_as_string(hide_password=False))
    async with admin.connect() as other:  # as a restart of the server would: the pooled connection dies
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await admin.dispose()
    await asyncio.sleep(PING_AFTER_IDLE_S + 0.2)  # idle for longer than the ping threshold
    for _ in range(2):  # whichever pooled connection comes first, the caller sees no error
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1


async def test_held_connections_that_died_while_idle_are_replaced_unseen(engine):
    """The hot-path reader and the writer keep their connections between uses; a server restart kills them."""
    if engine.dialect.name != "postgresql":
        pytest.skip("held PostgreSQL connections (SQLite reads and writes on local connections)")
    from sqlalchemy import text

    from storage.db import Reader, create_engine
    from storage.tickets import resident_tickets

    def backend(conn) -> int:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()

    writer, read = Writer(engine), Reader(engine)
    try:
        await writer.write(ticket_unit(10000, "k0"))
        pids = {await read(backend), await writer._transactions.run(backend)}
        admin = create_engine(engine.url.render_as_string(hide_password=False))
        async with admin.connect() as other:
            for pid in pids:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await admin.dispose()
        await asyncio.sleep(PING_AFTER_IDLE_S + 0.2)  # idle for longer than the ping threshold
        await writer.write(ticket_unit(10001, "k1"))
        assert [r.number for r in await read(resident_tickets, "o")] == [ticket_number(10001), ticket_number(10000)]
        assert pids.isdisjoint({await read(backend), await writer._transactions.run(backend)})
    finally:
        await writer.stop()
        await read.close()


async def test_a_burst_of_reads_opens_no_connections_beyond_the_held_ones(engine):
    """Fifty reads at once (as one event-loop turn can start) share the reader's held connections: opening
    and closing extra ones cost a server process and milliseconds of CPU each, under the heaviest load."""
    if engine.dialect.name != "postgresql":
        pytest.skip("held PostgreSQL connections (SQLite reads on one local connection)")
    from sqlalchemy import event, text

    from storage.db import Reader

    opened = []
    event.listen(engine.sync_engine, "connect", lambda *_: opened.append(1))
    read = Reader(engine)
    try:
        for _ in range(3):
            results = await asyncio.gather(*(read(lambda c: c.execute(text("SELECT pg_sleep(0.005)")).all())
                                             for _ in range(50)))
            assert len(results) == 50
        assert len(opened) <= Reader.KEEP
    finally:
        await read.close()


def ticket_unit(ticket_id: int, key: str | None) -> Unit:
    now = datetime(2026, 11, 22, 10, 0)
    unit = Unit(dedupe_key=key)
    unit.add(Ticket, id=ticket_id, number=ticket_number(ticket_id), openid="o", text="t", category="other",
             confidence=0.0, created_at=now, updated_at=now)
    if key:
        unit.add(InboundMessage, dedupe_key=key, openid="o", kind="text", received_at=now, reply="r")
    return unit


async def count(engine, model) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(model))).scalar_one()


async def test_group_commit_stores_every_unit_of_a_burst(engine):
    writer = Writer(engine)
    await asyncio.gather(*(writer.write(ticket_unit(10000 + i, f"k{i}")) for i in range(300)))
    await writer.stop()
    assert await count(engine, Ticket) == 300 and await count(engine, InboundMessage) == 300


async def test_reader_sees_what_the_writer_committed(engine):
    import threading

    from storage.db import Reader
    from storage.tickets import resident_tickets

    writer, read = Writer(engine), Reader(engine)
    try:
        assert await read(resident_tickets, "o") == []
        await asyncio.gather(*(writer.write(ticket_unit(10000 + i, f"k{i}")) for i in range(7)))
        rows = await read(resident_tickets, "o")
        assert len(rows) == 5 and [r.number for r in rows] == sorted((r.number for r in rows), reverse=True)
        if engine.dialect.name == "sqlite":  # on the loop's own thread: no hop to aiosqlite's thread
            assert await read(lambda _conn: threading.get_ident()) == threading.get_ident()
    finally:
        await writer.stop()
        await read.close()


async def test_a_stored_dedupe_key_fails_only_its_own_unit(engine):
    writer = Writer(engine)
    await writer.write(ticket_unit(10000, "same"))
    results = await asyncio.gather(writer.write(ticket_unit(10001, "same")), writer.write(ticket_unit(10002, "new")),
                                   writer.write(ticket_unit(10003, "new")), return_exceptions=True)
    await writer.stop()
    assert isinstance(results[0], Duplicate) and results[1] is None and isinstance(results[2], Duplicate)
    assert await count(engine, Ticket) == 2


async def test_a_unit_breaking_a_constraint_does_not_sink_its_batch(engine):
    writer = Writer(engine)
    bad = ticket_unit(10010, "a")
    bad.add(Ticket, id=10010, number="x", openid="o", text="t", category="other", confidence=0,
            created_at=datetime(2026, 1, 1), updated_at=datetime(2026, 1, 1))  # same primary key twice
    results = await asyncio.gather(writer.write(bad), writer.write(ticket_unit(10011, "b")), return_exceptions=True)
    await writer.stop()
    assert isinstance(results[0], Exception) and results[1] is None
    assert await count(engine, Ticket) == 1


async def test_the_writer_stores_rows_as_sqlalchemy_s_own_insert_does(engine):
    """The writer's lean executemany (storage.writer._insert) against a plain SQLAlchemy insert of the same rows:
    the same values in the database (dates with and without microseconds, booleans, None, column defaults)."""
    from sqlalchemy import insert, text

    from storage.models import Outbox, TicketEvent, TicketParty

    def rows(first_id: int) -> list[tuple]:
        at = datetime(2026, 3, 4, 5, 6, 7)
        return [(Ticket, dict(id=first_id, number=f"{first_id}9", openid="o", text="灯坏了", category="facilities",
                              confidence=0.5, created_at=at, updated_at=at.replace(microsecond=123456),
                              emergency=None, response_due=datetime(999, 1, 2), reminded=True)),
                (TicketEvent, dict(ticket_id=first_id, at=at, actor="o", action="created")),  # note: default ""
                (TicketParty, dict(ticket_id=first_id, route="property", lead=False)),
                (Outbox, dict(openid="s", text="t", ticket_id=first_id, next_attempt_at=at, created_at=at))]

    unit = Unit()
    for model, row in rows(10000):
        unit.add(model, **row)
    writer = Writer(engine)
    await writer.write(unit)
    await writer.stop()
    async with engine.begin() as conn:
        for model, row in rows(20000):
            await conn.execute(insert(model), [row])

    async def stored(model, ticket_id: int) -> list[tuple]:
        key = model.id if model is Ticket else model.ticket_id
        columns = [c for c in model.__table__.c if c.name not in ("id", "number", "ticket_id")]
        async with engine.connect() as conn:  # raw text as the database holds it, not values SQLAlchemy parsed
            sql = text(f"SELECT {', '.join(f'CAST({c.name} AS TEXT)' for c in columns)} FROM {model.__tablename__} "
                       f"WHERE {key.name} = :id")
            return [tuple(r) for r in await conn.execute(sql, {"id": ticket_id})]

    for model in (Ticket, TicketEvent, TicketParty, Outbox):
        assert await stored(model, 10000) == await stored(model, 20000) != []


@given(st.datetimes(min_value=datetime(1, 1, 1), timezones=st.none() | st.timezones()))
def test_sqlite_dates_are_written_in_sqlalchemy_s_format(value):
    from sqlalchemy.dialects import sqlite

    from storage.writer import _sqlite_datetime

    dialect = sqlite.dialect()
    sqlalchemy_s = sqlite.DATETIME().bind_processor(dialect)
    assert _sqlite_datetime(sqlalchemy_s)(value) == sqlalchemy_s(value)


async def test_migrations_match_the_models(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def diff(sync_conn):
        return compare_metadata(MigrationContext.configure(sync_conn), Base.metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


@pytest.fixture(params=["memory", "redis"])
async def state(request):
    if request.param == "memory":
        store = MemoryState()
    else:
        store = RedisState(request.getfixturevalue("redis_url"), prefix=f"linli-test-{uuid.uuid4().hex}:")
    yield store
    await store.close()


async def test_claim_is_first_come_and_expires(state):
    assert await state.claim("k", "1", 0.2) is True
    assert await state.claim("k", "2", 0.2) is False
    assert await state.get("k") == "1"
    await asyncio.sleep(0.3)
    assert await state.get("k") is None and await state.claim("k", "3", 1) is True


async def test_hit_counts_within_its_window(state):
    assert [await state.hit("r", 0.3) for _ in range(3)] == [1, 2, 3]
    await asyncio.sleep(0.4)
    assert await state.hit("r", 0.3) == 1


async def test_lock_excludes_and_times_out(state):
    async with state.lock("token", ttl_s=5, wait_s=1):
        with pytest.raises(LockTimeout):
            async with state.lock("token", ttl_s=5, wait_s=0.1):
                pass
    async with state.lock("token", ttl_s=5, wait_s=0.1):
        pass


async def test_get_many_and_delete(state):
    await state.set("a", "1", 10)
    await state.set("b", "2", 10)
    await state.delete("a")
    assert await state.get_many(["a", "b", "c"]) == [None, "2", None]


async def test_batch_runs_every_kind_of_operation_in_order(state):
    await state.set("seen", "x", 10)
    results = await state.batch([
        ("claim", "c", "1", 10), ("claim", "c", "2", 10), ("hit", "n", 10), ("hit", "n", 10),
        ("get", "seen"), ("set", "seen", "y", 10), ("get", "seen"), ("delete", "seen"), ("get", "seen"),
        ("get", "never"),
    ])
    assert results == [True, False, 1, 2, "x", None, "y", None, None, None]


async def test_concurrent_batches_each_get_their_own_results(state):
    """Batches queued together share one Redis command; each caller must still get exactly its results,
    in order, and claims of one key must have exactly one winner."""
    async def caller(i: int) -> list:
        return await state.batch([("claim", f"own:{i}", "1", 10), ("claim", "shared", str(i), 10),
                                  ("hit", "count", 10), ("set", f"v:{i}", f"值{i}", 10), ("get", f"v:{i}")])

    results = await asyncio.gather(*(caller(i) for i in range(60)))
    assert all(r[0] is True and r[3] is None and r[4] == f"值{i}" for i, r in enumerate(results))
    assert sum(r[1] for r in results) == 1
    assert sorted(r[2] for r in results) == list(range(1, 61))  # every hit counted once


async def test_an_unknown_operation_is_refused_and_blocks_nothing(state):
    with pytest.raises(ValueError):
        await state.batch([("frobnicate", "k")])
    assert await state.batch([("get", "k")]) == [None]  # nothing stuck in the queue


async def test_batches_go_on_after_redis_forgets_the_script_or_drops_the_connection(redis_url):
    import redis.asyncio as redis

    store = RedisState(redis_url, prefix=f"linli-test-{uuid.uuid4().hex}:")
    admin = redis.from_url(redis_url)
    try:
        assert await store.batch([("set", "a", "1", 10)]) == [None]
        await admin.script_flush()  # as after a restart: EVALSHA gets NOSCRIPT
        assert await store.batch([("get", "a")]) == ["1"]
        await admin.client_kill_filter(_type="normal", skipme=True)  # every connection of ours cut
        with contextlib.suppress(redis.ConnectionError):
            await store.batch([("get", "a")])  # may fail once: the caller degrades …
        assert await store.batch([("get", "a")]) == ["1"]  # … and the next batch reconnects
    finally:
        await admin.aclose()
        await store.close()


async def test_a_batch_redis_never_answers_fails_within_the_timeout_and_the_next_one_reconnects(redis_url,
                                                                                                monkeypatch):
    """A Redis that accepts and then says nothing (a network swallowing packets) costs a batch at most the
    state's timeout, never a hang; once it answers again the next batch reconnects and gets its own answers."""
    from urllib.parse import urlsplit

    from redis import exceptions as redis_errors

    from storage import state as state_module
    from tests.faults_support import TcpProxy

    monkeypatch.setattr(state_module, "TIMEOUT_S", 0.5)
    target = urlsplit(redis_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    proxy.start()
    store = RedisState(f"redis://127.0.0.1:{proxy.port}{target.path}", prefix=f"linli-test-{uuid.uuid4().hex}:")
    loop = asyncio.get_running_loop()
    try:
        assert await store.batch([("set", "a", "1", 10)]) == [None]
        proxy.cut("blackhole")  # the held connection is reset; new ones are accepted and never answered
        with pytest.raises((redis_errors.ConnectionError, TimeoutError)):  # the reset one (or a silent one)
            await store.batch([("get", "a")])
        for _ in range(2):
            started = loop.time()
            with pytest.raises(TimeoutError):  # connected, then silence
                await store.batch([("get", "a")])
            assert 0.4 < loop.time() - started < 1.5
        proxy.restore()
        assert await store.batch([("get", "a"), ("claim", "b", "2", 10)]) == ["1", True]
        assert await store.batch([("get", "b")]) == ["2"]
    finally:
        await store.close()
        proxy.stop()


async def test_in_process_state_drops_what_expired_as_it_goes():
    t = [1000.0]
    store = MemoryState(clock=lambda: t[0])
    for i in range(5000):
        await store.set(f"short:{i}", "x", 1)
    await store.set("kept", "x", 1)
    await store.set("long", "y", 3600)
    t[0] += 2
    await store.set("kept", "again", 10)  # set again: its first expiry must not drop it
    await store.set("trigger", "z", 10)
    assert len(store._data) == 3 and await store.get("kept") == "again" and await store.get("long") == "y"


async def test_scoped_state_reads_ahead_and_writes_once(state):
    from storage.state import ScopedState

    scoped = ScopedState(state)
    await state.set("a", "1", 10)
    async with scoped.scope([("get", "a"), ("claim", "k", "1", 10)]) as (a, claimed):
        assert (a, claimed) == ("1", True)
        await scoped.set("b", "2", 10)
        await scoped.delete("a")
        assert await scoped.get("b") == "2" and await scoped.get("a") is None  # read your own writes
        assert await state.get("b") is None and await state.get("a") == "1"  # held back …
        await scoped.flush([("set", "c", "3", 10)])
    assert await state.get_many(["a", "b", "c"]) == [None, "2", "3"]  # … until the flush


async def test_scoped_state_sends_no_delete_for_a_key_it_knows_is_absent(state):
    """Every operation costs Redis CPU inside the batch script: a delete of a key read ahead as absent, or
    deleted already in this scope, is not sent."""
    from storage.state import ScopedState

    sent = []

    class Recording:  # the store underneath, noting what each batch carries
        def __getattr__(self, name):
            return getattr(state, name)

        async def batch(self, ops):
            sent.append([op[0] for op in ops])
            return await state.batch(ops)

    scoped = ScopedState(Recording())
    await state.set("present", "1", 10)
    async with scoped.scope([("get", "absent"), ("get", "present")]):
        await scoped.delete("absent")
        await scoped.delete("present")
        await scoped.delete("present")
        await scoped.flush()
    assert sent == [["get", "get"], ["delete"]]
    assert await state.get_many(["absent", "present"]) == [None, None]
