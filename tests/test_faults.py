"""Fault tests (issue 5, item 3): kill, cut and restart what the webhook depends on, under load, and check the two
promises: WeChat always gets an answer within 5 s, and no receipt is ever given for something not stored (and
no retry stores anything twice). See docs/faults.md.

The backend follows the rest of the suite: `pytest` runs on SQLite + in-process state, `DATABASE_URL=postgresql://
... REDIS_URL=redis://... pytest` on PostgreSQL + Redis. The PostgreSQL-only tests (database cut off, two
workers) use the session's PostgreSQL database on both runs. Real `linli serve` processes, 127.0.0.1 only.
"""
from __future__ import annotations

from bot.sender import parts as sender_parts

import asyncio
import random
import shutil
import time
import uuid
from datetime import timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

from handlers.texts import TRY_AGAIN_LATER
from conftest import TravellingNow, _pg, unavailable
from faults_support import (PrivateRedis, Push, ServeProcess, TcpProxy, check_stored, cpu_seconds,
                                  make_pushes, send, send_all, serve_env, stored_tickets)

ANSWER_WITHIN_S = 5.0  # WeChat's limit


def answered_in_time(pushes: list[Push], phases: set[str] | None = None) -> list[str]:
    """Problems with any answer: no HTTP 200, too slow, or neither a receipt nor TRY_AGAIN_LATER."""
    bad = []
    for p in pushes:
        for a in p.answers:
            if phases is not None and a.phase not in phases:
                continue
            if a.status != 200 or a.elapsed_s >= ANSWER_WITHIN_S or not (a.number or a.reply == TRY_AGAIN_LATER):
                bad.append(f"{p.openid} [{a.phase}] status={a.status} {a.elapsed_s:.2f}s {a.reply[:80]!r}")
    return bad


@pytest.fixture
def servers(tmp_path):
    """Makes ServeProcess objects; every one is stopped (its whole process group) at the end, pass or fail."""
    made: list[ServeProcess] = []

    def make(env: dict[str, str], **options) -> ServeProcess:
        made.append(ServeProcess(env, tmp_path, name=f"serve{len(made)}", **options))
        return made[-1]

    yield make
    for server in made:
        server.stop()
    for server in made:  # shown only when the test failed
        print(f"--- {server.name} (startups {[round(s, 1) for s in server.startup_s]} s) ---\n{server.log_tail()}")


@pytest.fixture
def private_redis(tmp_path):
    if not shutil.which("redis-server"):
        unavailable("redis-server", "not on PATH")
    server = PrivateRedis(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_clean(pg_url) -> str:
    """The session's PostgreSQL database, emptied (on the SQLite run too: these tests are about PostgreSQL)."""
    from storage.models import Base

    _pg(pg_url, "TRUNCATE " + ", ".join(t.name for t in Base.metadata.sorted_tables) + " CASCADE")
    return pg_url


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        yield session


# -- 1. SIGKILL in the middle of a load, then restart -------------------------------------------------------------
async def test_sigkill_mid_load_then_restart_loses_nothing_and_stores_nothing_twice(database_url, state_url,
                                                                                     servers, http):
    app = servers(serve_env(database_url, state_url))
    await app.start()
    pushes = make_pushes(300, "kill")
    receipts, killed_at = 0, None

    def on_answer(_push: Push, answer) -> None:
        nonlocal receipts, killed_at
        receipts += answer.number is not None
        if receipts >= 100 and killed_at is None:
            app.kill()  # SIGKILL while ~20 requests are in flight
            killed_at = time.monotonic()

    await send_all(http, app.url, pushes, concurrency=20, phase="load", on_answer=on_answer)
    assert killed_at is not None, "the load ended before the kill"
    no_receipt = [p for p in pushes if not p.numbers]
    in_flight = [p for p in no_receipt if p.answers[0].status is None and p.answers[0].started < killed_at]
    assert len(no_receipt) >= 100, "the kill came too late to matter"

    await app.start()  # same port, same environment
    answered = [p for p in pushes if p.numbers]
    sample = random.Random(5).sample(answered, 50)
    await send_all(http, app.url, no_receipt + sample, concurrency=20, phase="retry")

    retries = [a for p in no_receipt + sample for a in p.answers if a.phase == "retry"]
    assert all(a.status == 200 and a.number for a in retries), [a for a in retries if not a.number][:5]
    for p in sample:  # a retry of an answered push returns the same receipt
        first, retry = p.answers[0], p.answers[-1]
        assert retry.number == first.number, (p.openid, first.reply, retry.reply)
    tickets = await stored_tickets(database_url)
    check_stored(pushes, tickets)  # every receipt stored; each push, in flight or not, stored exactly once
    assert sum(len(ns) for ns in tickets.values()) == len(pushes)
    print(f"killed after {receipts} receipts; {len(in_flight)} in flight, {len(no_receipt)} without receipt; "
          f"restart took {app.startup_s[-1]:.1f} s")


# -- 2. Redis restarted in the middle of a load --------------------------------------------------------------------
async def test_redis_restart_mid_load_keeps_answering_and_stores_nothing_twice(database_url, private_redis,
                                                                               servers, http):
    app = servers(serve_env(database_url, private_redis.url))
    await app.start()
    pushes, pairs = make_pushes(600, "redis"), make_pushes(20, "redis-pair")
    phase, stop, answers = "before", asyncio.Event(), 0

    def on_answer(_push: Push, answer) -> None:
        nonlocal answers
        answer.phase, answers = phase, answers + 1

    async def control() -> None:
        nonlocal phase
        deadline = time.monotonic() + 30
        while answers < 60 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        private_redis.kill()
        phase = "redis down"
        # the same push twice at once, while only the database can tell a retry from a new push
        await asyncio.gather(*(send(http, app.url, p, phase) for p in pairs for _ in range(2)))
        await asyncio.sleep(2.5)
        private_redis.start()  # same port, empty
        phase = "redis back"
        await asyncio.sleep(1.5)
        stop.set()

    await asyncio.gather(control(),
                         send_all(http, app.url, pushes, concurrency=20, pace_s=0.25, on_answer=on_answer, stop=stop))
    sent = [p for p in pushes if p.answers] + pairs
    assert len(sent) < len(pushes), "the load ran out before Redis came back"
    during = [a for p in sent for a in p.answers if a.phase == "redis down"]
    assert len(during) >= 50, f"only {len(during)} pushes while Redis was down"

    await send_all(http, app.url, sent, concurrency=20, phase="retry")  # WeChat's retries of everything
    await send_all(http, app.url, [p for p in sent if not p.numbers], concurrency=20, phase="retry 2")

    bad = answered_in_time(sent)
    assert not bad, f"{len(bad)} answers not 200 within 5 s with a receipt or TRY_AGAIN_LATER: {bad[:10]}"
    tickets = await stored_tickets(database_url)
    check_stored(sent, tickets)
    for p in pairs:  # both copies, and the retry, name the same ticket
        assert len(p.numbers) == 1, (p.openid, [a.reply for a in p.answers])
    print(f"{len(sent)} pushes, {len(during)} while Redis was down "
          f"({sum(a.number is not None for a in during)} with a receipt)")


# -- 3. PostgreSQL unreachable for a while -------------------------------------------------------------------------
async def test_postgres_unreachable_answers_in_time_tells_no_lie_and_stores_retries_once(pg_clean, state_url,
                                                                                         servers, http):
    target = make_url(pg_clean)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    proxy.start()
    app = None
    try:
        via_proxy = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        app = servers(serve_env(via_proxy, state_url))
        await app.start()
        before = make_pushes(20, "pg-before")
        await send_all(http, app.url, before, concurrency=10, phase="before")
        assert all(p.numbers for p in before), [p.answers[-1].reply for p in before if not p.numbers]

        proxy.cut("refuse")  # connections dropped as they come: errors are quick
        refused = make_pushes(15, "pg-refused")
        await send_all(http, app.url, refused, concurrency=15, phase="refused")
        proxy.cut("blackhole")  # connections accepted, never answered: only timeouts help
        swallowed = make_pushes(10, "pg-blackhole")
        await send_all(http, app.url, swallowed, concurrency=10, phase="blackhole")
        cut_off = refused + swallowed
        slow = [f"{p.openid} {a.status} {a.elapsed_s:.2f}s {a.reply[:60]!r}" for p in cut_off for a in p.answers
                if a.status != 200 or a.elapsed_s >= ANSWER_WITHIN_S or a.reply != TRY_AGAIN_LATER]
        assert not slow, f"while PostgreSQL was unreachable, answers must be TRY_AGAIN_LATER within 5 s: {slow}"

        proxy.restore()
        probes: list[Push] = []
        deadline = time.monotonic() + 30
        while not (probes and probes[-1].numbers):  # the first new push that is stored again
            assert time.monotonic() < deadline, "no receipt within 30 s of PostgreSQL coming back"
            probes += make_pushes(1, "pg-probe")
            await send(http, app.url, probes[-1], "probe")
            await asyncio.sleep(0.2)

        await send_all(http, app.url, cut_off + before, concurrency=10, phase="retry")
        bad = answered_in_time(cut_off + before + probes)
        assert not bad, bad
        late = [(p.openid, p.answers[-1].reply) for p in cut_off + before if not p.answers[-1].number]
        assert not late, f"retries after PostgreSQL came back without a receipt: {late}"
    finally:
        if app is not None:
            app.stop()  # before the proxy goes, or its log fills with refused connections
        proxy.stop()
    tickets = await stored_tickets(pg_clean)
    check_stored(before + cut_off, tickets)  # and each retried push is stored exactly once
    check_stored(probes, tickets, all_stored=False)
    print(f"{len(cut_off)} pushes while cut off; back after {len(probes)} probe(s); "
          f"blackhole answers took up to {max(p.answers[0].elapsed_s for p in swallowed):.2f} s, "
          f"retries up to {max(p.answers[-1].elapsed_s for p in cut_off):.2f} s")


# -- 4. The WeChat API stand-in failing ---------------------------------------------------------------------------
async def test_wechat_api_failures_delay_notices_but_lose_or_double_none(database_url, state_url, http):
    from bot.app import SERVICE, create_app
    from bot.config import Settings
    from bot.demo import DEMO_APPID, DEMO_SECRET, DEMO_TOKEN, IDENTITIES
    from bot.sender import OutboxSender
    from bot.standin import STANDIN_STATE, create_standin, start_standin
    from bot.wechat_api import WeChatAPI
    from storage.community import seed_demo
    from storage.db import create_engine
    from storage.models import Building, Grid, Household, Outbox, Resident
    from storage.state import MemoryState, RedisState

    standin_app = create_standin(appid=DEMO_APPID, secret=DEMO_SECRET, token=DEMO_TOKEN, webhook_url="")
    standin = await start_standin(standin_app)
    platform = standin_app[STANDIN_STATE]
    settings = Settings(wechat_token=DEMO_TOKEN, wechat_appid=DEMO_APPID, wechat_secret=DEMO_SECRET,
                        database_url=database_url, redis_url=state_url, wechat_api_base=standin.url,
                        wechat_template_id="tpl-progress")
    server = TestServer(create_app(settings, migrate=True, state_prefix=f"linli-faults-{uuid.uuid4().hex}:",
                                   background=False))
    await server.start_server()
    platform.webhook_url = str(server.make_url("/wechat"))
    engines, apis = [], []
    token_store = RedisState(state_url, f"linli-faults-{uuid.uuid4().hex}:") if state_url else MemoryState()
    now = TravellingNow()
    try:
        engine = server.app[SERVICE].engine
        await seed_demo(engine, IDENTITIES)
        residents = [f"fault-notice-{uuid.uuid4().hex[:8]}-{i}" for i in range(12)]
        async with engine.begin() as conn:  # twelve residents bound to flats in grid 1: their reports go to 王网格员
            homes = (await conn.execute(select(Household.id).join(Building).join(Grid).where(Grid.code == "1")
                                        .order_by(Household.id).limit(len(residents)))).scalars().all()
            assert len(homes) == len(residents)
            await conn.execute(insert(Resident.__table__), [
                dict(openid=o, household_id=h, is_owner=True, name=f"居民{i}", phone="", status="bound",
                     bound_at=now(), created_at=now()) for i, (o, h) in enumerate(zip(residents, homes))])

        async def say(openid: str, text: str) -> str:
            async with http.post(f"{standin.url}/_standin/push",
                                            json={"openid": openid, "type": "text", "content": text}) as r:
                body = await r.json()
            assert body["status"] == 200, body
            return body["reply"]

        worker = IDENTITIES["王网格员"]
        for name in ("王网格员", "陈主任"):
            await say(IDENTITIES[name], "你好")  # staff have written to the account: their window is open
        numbers = []
        for i, openid in enumerate(residents):
            reply = await say(openid, [
                "楼道的灯坏了好几天了，晚上看不见", "楼下的垃圾三天没人收了", "单元门的门禁坏了，谁都能进来",
                "下水道堵了，污水漫到路上"][i % 4] + f"（{i}号）")
            assert "编号" in reply, reply
            numbers.append(reply.split("编号：")[1].split()[0])
        for number in numbers:  # accepting tells each resident (their window is open from their report)
            await say(worker, f"签收 {number}")

        async with engine.connect() as conn:
            pending = (await conn.execute(select(func.count()).select_from(Outbox).where(
                Outbox.status == "pending"))).scalar_one()
        assert pending > len(residents), pending

        # Two senders, as two processes would run; short API timeouts so a swallowed call costs 0.5 s.
        senders = []
        for name in ("w1", "w2"):
            engines.append(create_engine(database_url))
            apis.append(WeChatAPI(standin.url, DEMO_APPID, DEMO_SECRET, token_store, timeout_s=0.5))
            senders.append(OutboxSender(engines[-1], apis[-1], worker_id=name, now=now, template_id="tpl-progress"))
        faults = [{"mode": "http500", "count": 6}, {"mode": "errcode", "errcode": 40001, "count": 4},
                  {"mode": "errcode", "errcode": 45009, "count": 6}, {"mode": "timeout", "seconds": 1.0, "count": 4},
                  {"mode": "errcode", "errcode": -1, "count": 4}]
        for fault in faults:
            async with http.post(f"{standin.url}/_standin/faults", json=fault) as r:
                assert r.status == 200

        rounds = 0
        while True:
            await asyncio.gather(*(s.run_once() for s in senders))
            rounds += 1
            if rounds == 3:
                assert platform.faults == [], "every injected fault should have been met by now"
                async with http.delete(f"{standin.url}/_standin/faults") as r:
                    assert r.status == 200
            async with engine.connect() as conn:
                rows = (await conn.execute(select(Outbox.id, Outbox.openid, Outbox.status, Outbox.attempts,
                                                  Outbox.last_error, Outbox.text))).all()
            if rounds >= 3 and all(r.status != "pending" for r in rows):
                break
            assert rounds < 20, [r for r in rows if r.status == "pending"]
            now.offset += timedelta(hours=2)  # past any backoff (at most an hour)

        statuses = {r.status for r in rows}
        assert statuses == {"sent"}, [r for r in rows if r.status != "sent"]  # none dead, none kept, none pending
        assert sum(r.attempts for r in rows) >= 10, "the faults did not hit the notices"
        sent = platform.sent_to()
        per_person: dict[str, list[str]] = {}
        for r in rows:
            per_person.setdefault(r.openid, []).append(r.text)
        delivered: dict[str, list[str]] = {}
        for m in sent:  # a person's notices due together travel as one message
            delivered.setdefault(m.openid, []).extend(sender_parts(m.text) if m.kind == "custom" else [m.text])
        template_rows = {m.openid for m in sent if m.kind != "custom"}
        for openid, notices in per_person.items():  # every notice exactly once: none lost, none twice
            if openid in template_rows:
                assert len(delivered[openid]) == len(notices)
            else:
                assert sorted(delivered[openid]) == sorted(notices)
        assert set(delivered) == set(per_person)
        texts = [(m.openid, t) for m in sent if m.kind == "custom" for t in sender_parts(m.text)]
        assert len(texts) == len(set(texts))
        print(f"{len(rows)} notices delivered in {rounds} rounds, {sum(r.attempts for r in rows)} failed attempts")
    finally:
        for api in apis:
            await api.close()
        for e in engines:
            await e.dispose()
        await token_store.close()
        await server.close()
        await standin.close()


# -- 5. Two app processes behind one port -----------------------------------------------------------------------
async def test_two_workers_on_one_port_store_each_push_once(pg_clean, redis_url, servers):
    app = servers(serve_env(pg_clean, redis_url), workers=2)
    await app.start()
    pids = app.worker_pids()
    assert len(pids) == 2, pids
    cpu_before = {pid: cpu_seconds(pid) for pid in pids}
    pushes = make_pushes(150, "two")
    gate = asyncio.Semaphore(10)  # 10 pushes at a time, each sent twice at once: 20 requests in flight
    # a new connection per request, so the kernel spreads the copies of one push over both workers
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0)) as http:
        async def twice(push: Push) -> None:
            async with gate:
                await asyncio.gather(send(http, app.url, push, "copy 1"), send(http, app.url, push, "copy 2"))

        await asyncio.gather(*(twice(p) for p in pushes))
        await send_all(http, app.url, pushes, concurrency=20, phase="retry")
    bad = answered_in_time(pushes)
    assert not bad, bad
    for p in pushes:
        got = [a.number for a in p.answers]
        assert got[0] and len(set(got)) == 1, (p.openid, [a.reply for a in p.answers])
    check_stored(pushes, await stored_tickets(pg_clean))
    used = {pid: cpu_seconds(pid) - cpu_before[pid] for pid in pids}
    assert all(seconds > 0.1 for seconds in used.values()), f"a worker served (almost) nothing: CPU seconds {used}"
    print(f"worker CPU seconds during the load: {used}")


# -- 6. A delivery cut short by the webhook's deadline ------------------------------------------------------------
async def test_a_delivery_cut_short_by_the_deadline_does_not_hold_up_the_retry(wechat, monkeypatch):
    """Storage hangs before the write (say a read on a PostgreSQL that swallows packets): the webhook answers
    TRY_AGAIN_LATER at 4.5 s. WeChat's retry must then be handled at once, not wait 4 s for a reply that the
    abandoned delivery will never write (which left it 0.5 s, and often failed)."""
    import bot.delivery

    real_route, calls = bot.delivery.route, []

    async def hanging_once(msg, ctx, **options):
        calls.append(msg.dedupe_key)
        if len(calls) == 1:
            await asyncio.sleep(30)
        return await real_route(msg, ctx, **options)

    monkeypatch.setattr(bot.delivery, "route", hanging_once)
    msg_id = wechat.next_msg_id()
    started = time.monotonic()
    assert await wechat.send("fault-deadline", "楼道的灯坏了好几天了", msg_id=msg_id) == TRY_AGAIN_LATER
    assert time.monotonic() - started < ANSWER_WITHIN_S
    started = time.monotonic()
    retry = await wechat.send("fault-deadline", "楼道的灯坏了好几天了", msg_id=msg_id)
    assert "编号：" in retry and time.monotonic() - started < 2.0, (time.monotonic() - started, retry)
    assert await wechat.send("fault-deadline", "楼道的灯坏了好几天了", msg_id=msg_id) == retry


# -- 7. Two workers, and Redis gone -------------------------------------------------------------------------------
async def test_two_workers_without_redis_still_store_a_doubled_push_once(pg_clean, private_redis, servers):
    """Both copies of a push, on different processes, while the shared claim is unavailable: the database's
    unique key on the inbound record is the only thing that can tell, and it must."""
    app = servers(serve_env(pg_clean, private_redis.url), workers=2)
    await app.start()
    warm, doubled = make_pushes(20, "two-warm"), make_pushes(60, "two-noredis")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0)) as http:
        await send_all(http, app.url, warm, concurrency=10, phase="warm")
        private_redis.kill()
        gate = asyncio.Semaphore(10)

        async def twice(push: Push) -> None:
            async with gate:
                await asyncio.gather(send(http, app.url, push, "copy 1"), send(http, app.url, push, "copy 2"))

        await asyncio.gather(*(twice(p) for p in doubled))
        private_redis.start()
        await send_all(http, app.url, warm + doubled, concurrency=20, phase="retry")
    bad = answered_in_time(warm + doubled)
    assert not bad, bad
    for p in warm + doubled:
        assert len(p.numbers) == 1, (p.openid, [a.reply for a in p.answers])
    check_stored(warm + doubled, await stored_tickets(pg_clean))
