"""The asyncio WeChat API client against the stand-in: shared token, stale-token retry, error classes."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from aiohttp.test_utils import TestServer

from bot.standin import STANDIN_STATE, StandinState, create_standin
from bot.wechat_api import WeChatAPI, WeChatError
from storage.state import MemoryState, RedisState

APPID, SECRET = "wx2c2769f8efd9abc2", "s3cret"
RESIDENT = "o_resident_1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_server(clock):
    servers: list[TestServer] = []

    async def make(**options) -> TestServer:
        server = TestServer(create_standin(appid=APPID, secret=SECRET, token="tok", webhook_url="http://unused",
                                           clock=clock, template_ids={"TPL_PROGRESS"}, **options))
        await server.start_server()
        server.app[STANDIN_STATE].note_interaction(RESIDENT, "text", None)  # the resident just wrote to us
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def server(make_server) -> TestServer:
    return await make_server()


@pytest.fixture
async def make_api(server):
    clients: list[WeChatAPI] = []

    def make(state=None, target: TestServer | None = None, **options) -> WeChatAPI:
        base = str((target or server).make_url(""))
        api = WeChatAPI(base, APPID, SECRET, state if state is not None else MemoryState(), **options)
        clients.append(api)
        return api

    yield make
    for api in clients:
        await api.close()


def standin(server: TestServer) -> StandinState:
    return server.app[STANDIN_STATE]


async def add_fault(server: TestServer, **fault) -> None:
    async with server.app[STANDIN_STATE].session.post(server.make_url("/_standin/faults"), json=fault) as resp:
        assert resp.status == 200


async def test_token_is_fetched_once_and_reused(server, make_api):
    api = make_api()
    assert await api.access_token() == await api.access_token()
    await api.send_text(RESIDENT, "您的诉求已受理")
    assert standin(server).calls["/cgi-bin/stable_token"] == 1
    assert [(m.openid, m.text) for m in standin(server).sent] == [(RESIDENT, "您的诉求已受理")]


async def test_token_is_renewed_before_it_expires(server, make_api, clock):
    state = MemoryState(clock=clock)
    api = make_api(state)
    first = await api.access_token()
    clock.now += 7200 - 250  # inside the 300 s margin: the cached token is gone, WeChat has the next one
    assert await api.access_token() != first
    await api.send_text(RESIDENT, "提醒")


async def test_token_revoked_elsewhere_is_refreshed_and_the_call_retried_once(server, make_api):
    api = make_api()
    old = await api.access_token()
    standin(server).fetch_stable_token(force_refresh=True)  # e.g. someone forced a refresh on the platform
    await api.send_text(RESIDENT, "进度更新")
    assert await api.access_token() != old
    assert len(standin(server).sent) == 1 and standin(server).calls["/cgi-bin/stable_token"] == 2


async def test_injected_40001_refreshes_and_retries_once_then_gives_up(server, make_api):
    api = make_api()
    await api.access_token()
    await add_fault(server, mode="errcode", errcode=40001, count=1, path="/cgi-bin/message/")
    await api.send_text(RESIDENT, "一次")
    assert len(standin(server).sent) == 1

    await add_fault(server, mode="errcode", errcode=42001, count=2, path="/cgi-bin/message/")
    with pytest.raises(WeChatError) as failed:
        await api.send_text(RESIDENT, "两次")
    assert failed.value.errcode == 42001 and failed.value.stale_token and failed.value.permanent


async def test_closed_window_is_classified(server, make_api, clock):
    api = make_api()
    for _ in range(5):
        await api.send_text(RESIDENT, "通知")
    with pytest.raises(WeChatError) as spent:
        await api.send_text(RESIDENT, "第六条")
    assert spent.value.errcode == 45047 and spent.value.window_closed and not spent.value.transient

    clock.now += 48 * 3600 + 1  # the cached token expired too: 42001, refreshed, retried, then 45015
    with pytest.raises(WeChatError) as closed:
        await api.send_text(RESIDENT, "两天后")
    assert closed.value.errcode == 45015 and closed.value.window_closed


async def test_quota_is_classified(make_server, make_api):
    small = await make_server(daily_quota=1)
    api = make_api(target=small)
    await api.send_text(RESIDENT, "第一条")
    with pytest.raises(WeChatError) as spent:
        await api.send_text(RESIDENT, "第二条")
    assert spent.value.errcode == 45009 and spent.value.quota and spent.value.permanent


async def test_template_send_returns_msgid_and_long_values_fail(server, make_api):
    api = make_api()
    msgid = await api.send_template(RESIDENT, "TPL_PROGRESS", {"character_string1": "A7K2", "phrase2": "已办结"},
                                    url="https://example.com/t/A7K2")
    sent = standin(server).sent[-1]
    assert msgid > 0 and sent.kind == "template" and sent.text == "A7K2\n已办结"
    assert sent.url == "https://example.com/t/A7K2"
    with pytest.raises(WeChatError) as too_long:
        await api.send_template(RESIDENT, "TPL_PROGRESS", {"thing1": "这是一段超过二十个字的通知内容，模板消息放不下的"})
    assert too_long.value.errcode == 47003 and too_long.value.permanent
    with pytest.raises(WeChatError) as unknown:
        await api.send_template(RESIDENT, "TPL_NOPE", {"thing1": "x"})
    assert unknown.value.errcode == 40037


async def test_create_menu(server, make_api):
    api = make_api()
    menu = {"button": [{"type": "click", "name": "我要反映", "key": "REPORT"}]}
    await api.create_menu(menu)
    assert standin(server).menu == menu
    with pytest.raises(WeChatError) as bad:
        await api.create_menu({"button": []})
    assert bad.value.errcode == 40016


@pytest.mark.parametrize("fault, http_status", [
    ({"mode": "http500"}, 500),
    ({"mode": "errcode", "errcode": -1}, None),
    ({"mode": "timeout", "seconds": 0.3}, None),
])
async def test_transient_failures(server, make_api, fault, http_status):
    api = make_api(timeout_s=0.1)
    await api.access_token()
    await add_fault(server, count=1, path="/cgi-bin/message/", **fault)
    with pytest.raises(WeChatError) as failed:
        await api.send_text(RESIDENT, "稍后重试")
    assert failed.value.transient and not failed.value.permanent and failed.value.http_status == http_status
    await asyncio.sleep(0.25 if fault["mode"] == "timeout" else 0)  # let the stand-in drop the slow call
    await api.send_text(RESIDENT, "恢复了")
    assert [m.text for m in standin(server).sent] == ["恢复了"]


async def test_unreachable_api_is_transient():
    api = WeChatAPI("http://127.0.0.1:9", APPID, SECRET, MemoryState(), timeout_s=0.5)  # nothing listens there
    try:
        with pytest.raises(WeChatError) as failed:
            await api.access_token()
    finally:
        await api.close()
    assert failed.value.transient and failed.value.errcode is None


async def test_clients_sharing_a_state_fetch_the_token_once(server, make_api):
    shared = MemoryState()
    first, second = make_api(shared), make_api(shared)
    await asyncio.gather(*(api.send_text(RESIDENT, "并发") for api in (first, second, first, second)))
    assert standin(server).calls["/cgi-bin/stable_token"] == 1 and len(standin(server).sent) == 4


async def test_clients_sharing_redis_fetch_the_token_once(server, make_api, redis_url):
    prefix = f"linli-test-{uuid.uuid4()}:"
    states = [RedisState(redis_url, prefix=prefix) for _ in range(2)]  # as two app processes would
    try:
        apis = [make_api(state) for state in states]
        await asyncio.gather(*(api.access_token() for api in apis * 3))
        assert standin(server).calls["/cgi-bin/stable_token"] == 1
    finally:
        await states[0].delete(f"wechat:access_token:{APPID}")
        for state in states:
            await state.close()
