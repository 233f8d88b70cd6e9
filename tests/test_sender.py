"""The outbox sender against the WeChat stand-in and a real database: channels, retries, dead letters, races."""
from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import insert, select, update

from bot import sender as sender_module
from bot.sender import OutboxSender, dead_letters, progress_template, retry_dead, show_kept
from bot.standin import STANDIN_STATE, StandinState, create_standin
from bot.wechat_api import WeChatAPI
from handlers.notify import Subject, notify
from storage.db import create_engine
from storage.migrate import upgrade_async
from storage.models import Outbox, Ticket
from storage.state import MemoryState, RedisState
from storage.writer import Unit
from tests.conftest import TravellingNow

APPID, SECRET, TEMPLATE = "wx2c2769f8efd9abc2", "s3cret", "TPL_PROGRESS"
RESIDENT = "o_resident_1"
START = datetime(2026, 11, 22, 2, 0)


class StandinClock:
    def __init__(self) -> None:
        self.now = 1_795_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def now() -> TravellingNow:
    return TravellingNow(START)  # the sender's clock: backoff needs no real waiting


@pytest.fixture
async def wechat():
    server = TestServer(create_standin(appid=APPID, secret=SECRET, token="tok", webhook_url="http://unused",
                                       clock=StandinClock(), template_ids={TEMPLATE}))
    await server.start_server()
    yield server
    await server.close()


def standin(server: TestServer) -> StandinState:
    return server.app[STANDIN_STATE]


@pytest.fixture
async def make_api(wechat, state_url):
    """API clients sharing one token store, as app processes do (Redis on the PostgreSQL run)."""
    store = RedisState(state_url, f"linli-test-{uuid.uuid4().hex}:") if state_url else MemoryState()
    clients: list[WeChatAPI] = []

    def make() -> WeChatAPI:
        clients.append(WeChatAPI(str(wechat.make_url("")), APPID, SECRET, store, timeout_s=0.2))
        return clients[-1]

    yield make
    for client in clients:
        await client.close()
    await store.close()


@pytest.fixture
async def make_engine(database_url):
    """One engine per simulated app process, on the same database."""
    await upgrade_async(database_url)
    engines = []

    def make():
        engines.append(create_engine(database_url))
        return engines[-1]

    yield make
    for engine in engines:
        await engine.dispose()


@pytest.fixture
def make_sender(make_engine, make_api, now):
    def make(worker_id: str = "w1", engine=None, **options) -> OutboxSender:
        options.setdefault("template_id", TEMPLATE)
        return OutboxSender(engine or make_engine(), make_api(), worker_id=worker_id, now=now, **options)

    return make


async def add_notices(engine, now: TravellingNow, *notices: tuple[str, str], about: Subject | None = None) -> None:
    unit = Unit()
    for openid, text in notices:
        notify(unit, openid, text, now(), about=about)
    async with engine.begin() as conn:
        for table, row in unit.inserts:
            await conn.execute(insert(table), [row])


async def outbox(engine) -> list:
    async with engine.connect() as conn:
        return list((await conn.execute(select(Outbox.__table__).order_by(Outbox.id))).all())


async def add_fault(server: TestServer, **fault) -> None:
    async with standin(server).session.post(server.make_url("/_standin/faults"), json=fault) as resp:
        assert resp.status == 200


async def sent(server: TestServer) -> list[dict]:
    async with standin(server).session.get(server.make_url("/_standin/sent")) as resp:
        return await resp.json()


def resident_wrote(server: TestServer, openid: str = RESIDENT) -> None:
    standin(server).note_interaction(openid, "text", None)


async def test_a_due_notice_goes_out_as_a_customer_service_message(wechat, make_sender, now):
    resident_wrote(wechat)
    sender = make_sender()
    await add_notices(sender._engine, now, (RESIDENT, "您反映的问题已签收"))
    assert await sender.run_once() == 1
    assert [(m["openid"], m["kind"], m["text"]) for m in await sent(wechat)] == [
        (RESIDENT, "custom", "您反映的问题已签收")]
    [row] = await outbox(sender._engine)
    assert (row.status, row.channel, row.sent_at, row.claimed_until, row.attempts) == ("sent", "custom", now(), None, 0)
    assert await sender.run_once() == 0  # nothing twice


async def test_a_closed_window_falls_back_to_the_progress_template(wechat, make_sender, now):
    resident_wrote(wechat)
    standin(wechat).clock_offset += 49 * 3600  # the 48 h window is over
    sender = make_sender()
    async with sender._engine.begin() as conn:
        await conn.execute(insert(Ticket.__table__).values(
            id=10007, number="100071", openid=RESIDENT, text="3栋门口垃圾", category="environment",
            confidence=0.9, status="accepted", created_at=now(), updated_at=now()))
    text = "您反映的问题（编号 100071）已由网格员签收，正在办理，请耐心等待回复。"
    await add_notices(sender._engine, now, (RESIDENT, text), about=Subject("ticket", 10007, "100071", "办理中"))
    assert await sender.run_once() == 1
    [message] = await sent(wechat)
    assert (message["kind"], message["template_id"]) == ("template", TEMPLATE)
    assert message["text"].split("\n") == [text[:19] + "…", "100071", "办理中", "2026年11月22日 10:00"]
    [row] = await outbox(sender._engine)
    assert (row.status, row.channel) == ("sent", "template")


def test_the_template_fits_wechat_limits_without_a_ticket():
    data = progress_template("短通知", START)
    assert data == {"thing1": "短通知", "character_string2": "无", "phrase3": "通知", "time4": "2026年11月22日 10:00"}
    assert all(len(v) <= 20 for v in progress_template("长" * 50, START).values())


async def test_without_a_template_the_notice_is_kept_for_the_next_message(wechat, make_sender, now):
    sender = make_sender(template_id=None)
    await add_notices(sender._engine, now, ("o_never_wrote", "工单提醒"))
    assert await sender.run_once() == 1
    assert await sent(wechat) == []
    [row] = await outbox(sender._engine)
    assert (row.status, row.channel, row.sent_at) == ("kept", "kept", None)
    assert "45015" in row.last_error


async def test_a_person_no_channel_reaches_is_kept_too(wechat, make_sender, now):
    sender = make_sender()  # a template is configured, but WeChat refuses it for a non-follower (43004)
    await add_notices(sender._engine, now, ("o_never_wrote", "工单提醒"))
    assert await sender.run_once() == 1
    [row] = await outbox(sender._engine)
    assert (row.status, row.channel) == ("kept", "kept") and "43004" in row.last_error


CUSTOM = "/cgi-bin/message/custom/send"


@pytest.mark.parametrize("fault", [
    dict(mode="http500"),
    dict(mode="timeout", seconds=0.4),
    dict(mode="errcode", errcode=40001, count=2),  # still stale after the client's own token refresh
    dict(mode="errcode", errcode=45009),
    dict(mode="errcode", errcode=-1),
], ids=["http500", "timeout", "stale-token", "quota", "busy"])
async def test_transient_failures_are_retried_after_backoff_and_delivered_once(wechat, make_sender, now, fault):
    resident_wrote(wechat)
    sender = make_sender()
    await add_notices(sender._engine, now, (RESIDENT, "您的诉求已办结"))
    await add_fault(wechat, path=CUSTOM, **fault)
    assert await sender.run_once() == 1
    [row] = await outbox(sender._engine)
    assert (row.status, row.attempts, row.claimed_until) == ("pending", 1, None)
    assert now() + timedelta(seconds=2.5) <= row.next_attempt_at <= now() + timedelta(seconds=5)
    assert row.last_error
    assert await sender.run_once() == 0  # not due yet
    now.travel(seconds=5)
    assert await sender.run_once() == 1
    assert [m["text"] for m in await sent(wechat)] == ["您的诉求已办结"]
    [row] = await outbox(sender._engine)
    assert (row.status, row.channel, row.attempts) == ("sent", "custom", 1)


async def test_backoff_grows_and_the_last_attempt_makes_a_dead_letter(wechat, make_sender, now):
    resident_wrote(wechat)
    sender = make_sender(max_attempts=3, base_backoff_s=10)
    await add_notices(sender._engine, now, (RESIDENT, "提醒"))
    await add_fault(wechat, path=CUSTOM, mode="http500", count=3)
    delays = []
    for _ in range(2):
        await sender.run_once()
        [row] = await outbox(sender._engine)
        delays.append((row.next_attempt_at - now()).total_seconds())
        now.travel(seconds=3600)
    assert 5 <= delays[0] <= 10 and 10 <= delays[1] <= 20
    await sender.run_once()
    [row] = await outbox(sender._engine)
    assert (row.status, row.attempts) == ("dead", 3) and "HTTP 500" in row.last_error


async def test_a_permanent_error_is_a_dead_letter_that_can_be_retried(wechat, make_sender, now):
    resident_wrote(wechat)
    sender = make_sender()
    await add_notices(sender._engine, now, (RESIDENT, "您的诉求已受理"))
    await add_fault(wechat, path=CUSTOM, mode="errcode", errcode=40003)  # invalid openid
    assert await sender.run_once() == 1
    [dead] = await dead_letters(sender._engine)
    assert (dead.status, dead.attempts) == ("dead", 1) and "40003" in dead.last_error
    assert await sender.run_once() == 0  # a dead letter stays put
    assert await retry_dead(sender._engine, dead.id, now())
    assert not await retry_dead(sender._engine, dead.id, now())  # only dead letters can be requeued
    assert await sender.run_once() == 1
    assert [m["text"] for m in await sent(wechat)] == ["您的诉求已受理"]
    assert await dead_letters(sender._engine) == []


async def test_two_processes_send_every_notice_exactly_once(wechat, make_sender, make_engine, now):
    people = [f"o_resident_{i}" for i in range(30)]
    for openid in people:
        resident_wrote(wechat, openid)
    a, b = make_sender("app-1", batch=4), make_sender("app-2", batch=4)
    await add_notices(a._engine, now, *((p, f"通知 {p}") for p in people))
    for _ in range(20):  # until nothing is pending; a transient failure on the way is retried later
        if sum(await asyncio.gather(a.run_once(), b.run_once())) == 0:
            if all(r.status != "pending" for r in await outbox(a._engine)):
                break
            now.travel(hours=1)
    texts = [m["text"] for m in await sent(wechat)]
    assert sorted(texts) == sorted(f"通知 {p}" for p in people)
    rows = await outbox(a._engine)
    assert {(r.status, r.attempts) for r in rows} == {("sent", 0)}  # and no needless failure on the way
    assert {r.claimed_by for r in rows} == {"app-1", "app-2"}  # both took part


async def test_a_crashed_workers_claim_expires_and_another_sends(wechat, make_sender, now):
    resident_wrote(wechat)
    sender = make_sender("app-2", claim_s=60)
    await add_notices(sender._engine, now, (RESIDENT, "通知"))
    async with sender._engine.begin() as conn:  # app-1 claimed it, then died
        await conn.execute(update(Outbox.__table__).values(claimed_by="app-1", claimed_until=now() + timedelta(seconds=60)))
    assert await sender.run_once() == 0
    now.travel(seconds=61)
    assert await sender.run_once() == 1
    assert len(await sent(wechat)) == 1


async def test_run_forever_wakes_when_told(wechat, make_sender, now):
    resident_wrote(wechat)
    sender = make_sender()
    wake = asyncio.Event()
    task = asyncio.create_task(sender.run_forever(wake, idle_s=30))
    try:
        await asyncio.sleep(0.05)
        await add_notices(sender._engine, now, (RESIDENT, "新通知"))
        wake.set()
        for _ in range(100):
            if await sent(wechat):
                break
            await asyncio.sleep(0.01)
        assert [m["text"] for m in await sent(wechat)] == ["新通知"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_cli_lists_and_requeues_dead_letters(database_url, monkeypatch, capsys):
    async def one_dead_letter() -> int:
        await upgrade_async(database_url)
        engine = create_engine(database_url)
        async with engine.begin() as conn:
            new = await conn.execute(insert(Outbox.__table__).values(
                openid=RESIDENT, text="您的诉求已办结", status="dead", attempts=8, last_error="40003: invalid openid",
                next_attempt_at=START, created_at=START))
        await engine.dispose()
        return new.inserted_primary_key[0]

    dead_id = asyncio.run(one_dead_letter())
    monkeypatch.setenv("DATABASE_URL", database_url)
    parser = argparse.ArgumentParser()
    sender_module.register(parser.add_subparsers(dest="command", required=True))

    def run(*argv: str) -> int:
        args = parser.parse_args(argv)
        return args.run(args)

    assert run("dead") == 0
    listed = capsys.readouterr().out
    assert f"#{dead_id}" in listed and "40003: invalid openid" in listed and "您的诉求已办结" in listed
    assert run("retry", str(dead_id)) == 0
    assert run("retry", str(dead_id)) == 1
    assert run("dead") == 0
    assert "no dead letters" in capsys.readouterr().out


async def test_kept_notices_are_shown_once_at_the_next_message(wechat, make_sender, now):
    sender = make_sender(template_id=None)
    await add_notices(sender._engine, now, ("o_never_wrote", "第一条"), ("o_never_wrote", "第二条"), ("o_other", "别人的"))
    await sender.run_once()
    shown = await asyncio.gather(show_kept(sender._engine, "o_never_wrote"), show_kept(sender._engine, "o_never_wrote"))
    assert sorted(shown, key=len) == [[], ["第一条", "第二条"]]
    assert [r.status for r in await outbox(sender._engine)] == ["shown", "shown", "kept"]
