"""The WeChat stand-in: API behaviour with real error codes, the customer-service window, quota, faults, and
pushes that a fake webhook (checking signatures with bot.signing) answers."""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import xmltodict
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.signing import aes_cipher, signature, signature_matches, xml_message
from bot.standin import STANDIN_STATE, create_standin, start_standin

APPID, SECRET, TOKEN = "wx2c2769f8efd9abc2", "s3cret", "spamtest"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
RESIDENT = "o_resident_1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


def fake_webhook(received: list[dict]) -> web.Application:
    """A webhook that checks the push like the real one must, records it, and answers '收到：…'."""
    async def handle(request: web.Request) -> web.Response:
        q, body = request.query, await request.text()
        if not signature_matches(signature(TOKEN, q["timestamp"], q["nonce"]), q["signature"]):
            return web.Response(status=403)
        safe = q.get("encrypt_type") == "aes"
        if safe:
            encrypted = xmltodict.parse(body)["xml"]["Encrypt"]
            if not signature_matches(signature(TOKEN, q["timestamp"], q["nonce"], encrypted), q["msg_signature"]):
                return web.Response(status=403)
            body = aes_cipher(AES_KEY).decrypt(encrypted, APPID)
        push = xmltodict.parse(body)["xml"]
        received.append({"xml": body, "query": dict(q), **push})
        if push.get("Content") == "不回复":
            return web.Response(text="success")
        reply = xml_message({"ToUserName": push["FromUserName"], "FromUserName": push["ToUserName"],
                             "CreateTime": int(time.time()), "MsgType": "text",
                             "Content": f"收到：{push.get('Content') or push.get('Event') or push['MsgType']}"})
        if not safe:
            return web.Response(text=reply, content_type="application/xml")
        encrypted = aes_cipher(AES_KEY).encrypt(reply, APPID).decode()
        return web.Response(text=xml_message({
            "Encrypt": encrypted, "MsgSignature": signature(TOKEN, "1700000000", "42", encrypted),
            "TimeStamp": 1700000000, "Nonce": "42"}), content_type="application/xml")

    app = web.Application()
    app.router.add_post("/wechat", handle)
    return app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def received() -> list[dict]:
    return []


@pytest.fixture
async def webhook(received):
    server = TestServer(fake_webhook(received))
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def make_standin(clock, webhook):
    clients: list[TestClient] = []

    async def make(**options) -> TestClient:
        app = create_standin(appid=APPID, secret=SECRET, token=TOKEN, aes_key=AES_KEY,
                             webhook_url=str(webhook.make_url("/wechat")), clock=clock,
                             template_ids={"TPL_PROGRESS"}, **options)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def standin(make_standin) -> TestClient:
    return await make_standin()


async def get_token(standin: TestClient, appid: str = APPID, secret: str = SECRET) -> dict:
    resp = await standin.get("/cgi-bin/token", params={"grant_type": "client_credential", "appid": appid,
                                                       "secret": secret})
    return await resp.json()


async def stable_token(standin: TestClient, force: bool = False) -> dict:
    resp = await standin.post("/cgi-bin/stable_token", json={
        "grant_type": "client_credential", "appid": APPID, "secret": SECRET, "force_refresh": force})
    return await resp.json()


async def send_text(standin: TestClient, token: str, openid: str = RESIDENT, text: str = "您好") -> dict:
    resp = await standin.post("/cgi-bin/message/custom/send", params={"access_token": token},
                              json={"touser": openid, "msgtype": "text", "text": {"content": text}})
    return await resp.json()


async def send_template(standin: TestClient, token: str, data: dict, template_id: str = "TPL_PROGRESS",
                        openid: str = RESIDENT) -> dict:
    resp = await standin.post("/cgi-bin/message/template/send", params={"access_token": token}, json={
        "touser": openid, "template_id": template_id, "data": {k: {"value": v} for k, v in data.items()}})
    return await resp.json()


async def push(standin: TestClient, **spec) -> dict:
    resp = await standin.post("/_standin/push", json={"openid": RESIDENT, **spec})
    assert resp.status == 200, await resp.text()
    return await resp.json()


# -- tokens ----------------------------------------------------------------------------------------------------
async def test_fetching_a_token_invalidates_the_previous_one(standin):
    standin.app[STANDIN_STATE].note_interaction(RESIDENT, "text", None)
    first, second = await get_token(standin), await get_token(standin)
    assert first["expires_in"] == 7200 and first["access_token"] != second["access_token"]
    assert (await send_text(standin, first["access_token"]))["errcode"] == 40001
    assert (await send_text(standin, second["access_token"]))["errcode"] == 0


async def test_wrong_appid_and_secret_get_their_real_codes(standin):
    assert (await get_token(standin, appid="wxother"))["errcode"] == 40013
    assert (await get_token(standin, secret="wrong"))["errcode"] == 40125


async def test_stable_token_stays_until_forced(standin, clock):
    standin.app[STANDIN_STATE].note_interaction(RESIDENT, "text", None)
    first = await stable_token(standin)
    clock.now += 600
    again = await stable_token(standin)
    assert again["access_token"] == first["access_token"] and again["expires_in"] == 7200 - 600
    await get_token(standin)  # the plain token endpoint is isolated from the stable one
    assert (await send_text(standin, first["access_token"]))["errcode"] == 0

    forced = await stable_token(standin, force=True)
    assert forced["access_token"] != first["access_token"]
    assert (await send_text(standin, first["access_token"]))["errcode"] == 40001
    assert (await stable_token(standin, force=True))["access_token"] == forced["access_token"]  # < 30 s apart


async def test_stable_token_renews_early_and_tokens_expire(standin, clock):
    standin.app[STANDIN_STATE].note_interaction(RESIDENT, "text", None)
    first = await stable_token(standin)
    clock.now += 7200 - 100  # in the last 5 minutes a normal call already gets the next token
    renewed = await stable_token(standin)
    assert renewed["access_token"] != first["access_token"]
    assert (await send_text(standin, first["access_token"]))["errcode"] == 0  # still valid until it expires
    clock.now += 101
    assert (await send_text(standin, first["access_token"]))["errcode"] == 42001
    assert (await send_text(standin, "made-up"))["errcode"] == 40014
    resp = await standin.post("/cgi-bin/message/custom/send", json={})
    assert (await resp.json())["errcode"] == 41001


# -- the customer-service window -----------------------------------------------------------------------------
async def test_message_opens_48h_window_of_five(standin, clock):
    token = (await stable_token(standin))["access_token"]
    assert (await send_text(standin, token))["errcode"] == 45015  # never wrote to the account
    await push(standin, type="text", content="楼道灯坏了")
    for _ in range(5):
        assert (await send_text(standin, token))["errcode"] == 0
    over = await send_text(standin, token)
    assert over["errcode"] == 45047 and over["errmsg"].startswith("out of response count limit")

    await push(standin, type="text", content="还没修")
    clock.now += 48 * 3600 - 10
    token = (await stable_token(standin))["access_token"]  # the old one expired long ago
    assert (await send_text(standin, token))["errcode"] == 0
    clock.now += 11
    closed = await send_text(standin, token)
    assert closed["errcode"] == 45015 and "response out of time limit" in closed["errmsg"]


async def test_event_opens_one_minute_window_of_three(standin, clock):
    token = (await stable_token(standin))["access_token"]
    await push(standin, type="event", event="CLICK", event_key="MY_TICKETS")
    assert [(await send_text(standin, token))["errcode"] for _ in range(4)] == [0, 0, 0, 45047]
    await push(standin, type="event", event="subscribe")
    clock.now += 61
    assert (await send_text(standin, token))["errcode"] == 45015


async def test_unsubscribed_resident_gets_nothing(standin):
    token = (await stable_token(standin))["access_token"]
    assert (await send_template(standin, token, {"thing1": "已受理"}))["errcode"] == 43004
    await push(standin, type="text", content="你好")
    await push(standin, type="event", event="unsubscribe")
    assert (await send_text(standin, token))["errcode"] == 45015
    assert (await send_template(standin, token, {"thing1": "已受理"}))["errcode"] == 43004


# -- templates, menus, records -------------------------------------------------------------------------------
async def test_template_send_checks_template_and_field_length(standin):
    token = (await stable_token(standin))["access_token"]
    await push(standin, type="event", event="subscribe")
    ok = await send_template(standin, token, {"character_string1": "A7K2", "thing2": "楼" * 20})
    assert ok["errcode"] == 0 and isinstance(ok["msgid"], int)
    assert (await send_template(standin, token, {"thing2": "x"}, template_id="TPL_UNKNOWN"))["errcode"] == 40037
    too_long = await send_template(standin, token, {"thing2": "楼" * 21})
    assert too_long["errcode"] == 47003 and "data.thing2.value" in too_long["errmsg"]

    sent = standin.app[STANDIN_STATE].sent
    assert len(sent) == 1 and sent[0].kind == "template" and sent[0].text == "A7K2\n" + "楼" * 20


async def test_menu_is_validated_and_stored(standin):
    token = (await stable_token(standin))["access_token"]
    menu = {"button": [{"type": "click", "name": "我要反映", "key": "REPORT"},
                       {"name": "更多", "sub_button": [{"type": "click", "name": "我的诉求", "key": "MINE"}]}]}
    resp = await standin.get("/cgi-bin/menu/get", params={"access_token": token})
    assert (await resp.json())["errcode"] == 46003
    resp = await standin.post("/cgi-bin/menu/create", params={"access_token": token}, json=menu)
    assert (await resp.json())["errcode"] == 0
    resp = await standin.get("/cgi-bin/menu/get", params={"access_token": token})
    assert (await resp.json())["menu"] == menu

    four = {"button": [{"type": "click", "name": f"b{i}", "key": f"K{i}"} for i in range(4)]}
    six_subs = {"button": [{"name": "更多", "sub_button": [{"type": "click", "name": f"s{i}", "key": f"K{i}"}
                                                          for i in range(6)]}]}
    for bad, code in ((four, 40016), (six_subs, 40023), ({"button": [{"type": "click", "name": "无键"}]}, 40017)):
        resp = await standin.post("/cgi-bin/menu/create", params={"access_token": token}, json=bad)
        assert (await resp.json())["errcode"] == code


async def test_sent_messages_are_recorded_in_order_per_openid(standin, clock):
    token = (await stable_token(standin))["access_token"]
    for openid in (RESIDENT, "o_worker"):
        await push(standin, openid=openid, type="text", content="在吗")
    await send_text(standin, token, text="第一条")
    clock.now += 5
    await send_text(standin, token, openid="o_worker", text="新诉求")
    await send_text(standin, token, text="第二条")

    everything = await (await standin.get("/_standin/sent")).json()
    assert [(m["seq"], m["openid"], m["text"]) for m in everything] == [
        (1, RESIDENT, "第一条"), (2, "o_worker", "新诉求"), (3, RESIDENT, "第二条")]
    assert everything[1]["time"] == clock.now and everything[1]["kind"] == "custom"
    mine = await (await standin.get("/_standin/sent", params={"openid": RESIDENT, "after": "1"})).json()
    assert [m["text"] for m in mine] == ["第二条"]


# -- quota and faults ------------------------------------------------------------------------------------------
async def test_daily_quota_per_api_resets_at_beijing_midnight(make_standin, clock):
    clock.now = 1_790_000_000 - (1_790_000_000 + 8 * 3600) % 86400 + 86400 - 60  # 23:59 in Beijing
    standin = await make_standin(daily_quota=2)
    token = (await stable_token(standin))["access_token"]
    await push(standin, type="text", content="你好")
    assert [(await send_text(standin, token))["errcode"] for _ in range(3)] == [0, 0, 45009]
    assert (await stable_token(standin))["access_token"] == token  # other API unaffected
    clock.now += 61
    assert (await send_text(standin, token))["errcode"] == 0


async def test_faults_apply_to_the_next_calls_then_clear(standin):
    token = (await stable_token(standin))["access_token"]
    await push(standin, type="text", content="你好")
    await standin.post("/_standin/faults", json={"mode": "http500", "count": 2})
    await standin.post("/_standin/faults", json={"mode": "errcode", "errcode": 45009, "count": 1,
                                                 "path": "/cgi-bin/message/"})
    statuses = [(await standin.post("/cgi-bin/message/custom/send", params={"access_token": token},
                                    json={"touser": RESIDENT, "msgtype": "text", "text": {"content": "x"}})).status
                for _ in range(2)]
    assert statuses == [500, 500]
    assert (await stable_token(standin))["access_token"] == token  # the errcode fault is only for /message/
    assert (await send_text(standin, token))["errcode"] == 45009
    assert (await send_text(standin, token))["errcode"] == 0

    await standin.post("/_standin/faults", json={"mode": "errcode", "errcode": -1, "count": 5})
    assert (await send_text(standin, token))["errcode"] == -1
    await standin.delete("/_standin/faults")
    assert (await send_text(standin, token))["errcode"] == 0
    assert len(standin.app[STANDIN_STATE].sent) == 2  # failed calls deliver nothing


async def test_timeout_fault_delays_then_drops_the_call(standin):
    token = (await stable_token(standin))["access_token"]
    await push(standin, type="text", content="你好")
    await standin.post("/_standin/faults", json={"mode": "timeout", "seconds": 0.2, "count": 1})
    started = asyncio.get_running_loop().time()
    resp = await standin.post("/cgi-bin/message/custom/send", params={"access_token": token},
                              json={"touser": RESIDENT, "msgtype": "text", "text": {"content": "x"}})
    assert resp.status == 504 and asyncio.get_running_loop().time() - started >= 0.2
    assert standin.app[STANDIN_STATE].sent == []


# -- pushes to the webhook ------------------------------------------------------------------------------------
async def test_text_push_is_signed_like_wechat_and_reply_read(standin, received, clock):
    result = await push(standin, type="text", content="楼道灯坏了")
    assert result["status"] == 200 and result["reply"] == "收到：楼道灯坏了" and result["error"] is None
    got = received[0]
    assert (got["ToUserName"], got["FromUserName"], got["MsgType"], got["Content"]) == (
        "gh_demo", RESIDENT, "text", "楼道灯坏了")
    assert int(got["CreateTime"]) == int(clock.now) and int(got["MsgId"]) == result["msg_id"]
    assert got["query"]["openid"] == RESIDENT and "encrypt_type" not in got["query"]


async def test_safe_mode_push_is_encrypted_and_reply_decrypted(standin, received):
    result = await push(standin, type="text", content="安全模式", safe=True)
    assert result["reply"] == "收到：安全模式", result
    assert received[0]["query"]["encrypt_type"] == "aes" and received[0]["Content"] == "安全模式"


async def test_each_push_type_has_wechats_fields(standin, received):
    await push(standin, type="image", media_id="MEDIA1", pic_url="http://example.com/a.jpg")
    await push(standin, type="voice", media_id="MEDIA2", recognition="水管漏水了")
    await push(standin, type="location", lat=30.5928, lon=114.3055, label="武汉市江汉区某小区")
    result = await push(standin, type="event", event="CLICK", event_key="MY_TICKETS")
    image, voice, location, click = received
    assert (image["PicUrl"], image["MediaId"]) == ("http://example.com/a.jpg", "MEDIA1")
    assert (voice["MsgType"], voice["Recognition"], voice["Format"]) == ("voice", "水管漏水了", "amr")
    assert (float(location["Location_X"]), float(location["Location_Y"]), location["Label"]) == (
        30.5928, 114.3055, "武汉市江汉区某小区")
    assert (click["Event"], click["EventKey"]) == ("CLICK", "MY_TICKETS") and "MsgId" not in click
    assert result["msg_id"] is None and result["reply"] == "收到：CLICK"


async def test_retry_resends_the_same_push_without_a_new_interaction(standin, received):
    first = await push(standin, type="text", content="重复的消息")
    again = await push(standin, type="text", content="重复的消息", msg_id=first["msg_id"])
    last = await push(standin, repeat_last=True)
    assert first["msg_id"] == again["msg_id"] == last["msg_id"]
    assert received[0]["xml"] == received[1]["xml"] == received[2]["xml"]
    assert len(standin.app[STANDIN_STATE].followers[RESIDENT].grants) == 1


async def test_empty_or_failed_replies_are_reported(standin):
    assert (await push(standin, type="text", content="不回复"))["reply"] is None
    state = standin.app[STANDIN_STATE]
    state.webhook_url = state.webhook_url.replace("/wechat", "/missing")
    result = await push(standin, type="text", content="你好")
    assert result["status"] == 404 and result["error"] == "HTTP 404"


async def test_clock_can_be_moved_over_http(standin, clock):
    resp = await standin.post("/_standin/clock", json={"advance": 3600})
    assert (await resp.json())["now"] == clock.now + 3600


async def test_start_standin_serves_on_a_free_port():
    running = await start_standin(create_standin(appid=APPID, secret=SECRET, token=TOKEN,
                                                 webhook_url="http://127.0.0.1:9/wechat"))
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{running.url}/_standin/sent") as resp:
            assert await resp.json() == []
    finally:
        await running.close()
