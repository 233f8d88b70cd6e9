"""The terminal chat, driven by scripted lines against the stand-in and a fake webhook."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import xmltodict
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.signing import aes_cipher, signature, signature_matches, xml_message
from bot.simulator import run_chat
from bot.standin import STANDIN_STATE, StandinState, create_standin

APPID, SECRET, TOKEN = "wx2c2769f8efd9abc2", "s3cret", "spamtest"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
IDENTITIES = {"张阿姨": "o_resident", "李网格员": "o_worker"}


class FakeService:
    """Answers like a webhook with dedupe (a retried MsgId gets the first reply) and notifies the worker
    of every new complaint through the stand-in, as the outbox sender will."""

    def __init__(self) -> None:
        self.standin: StandinState | None = None
        self.pushes: list[dict] = []
        self.replies: dict[str, str] = {}
        self.tickets = 0

    async def handle(self, request: web.Request) -> web.Response:
        q, body = request.query, await request.text()
        if not signature_matches(signature(TOKEN, q["timestamp"], q["nonce"]), q["signature"]):
            return web.Response(status=403)
        if q.get("encrypt_type") == "aes":
            body = aes_cipher(AES_KEY).decrypt(xmltodict.parse(body)["xml"]["Encrypt"], APPID)
        push = xmltodict.parse(body)["xml"]
        self.pushes.append({"safe": q.get("encrypt_type") == "aes", **push})
        key = push.get("MsgId") or push["FromUserName"] + push["CreateTime"] + push.get("Event", "")
        if key not in self.replies:
            self.replies[key] = self.answer(push)
        reply = xml_message({"ToUserName": push["FromUserName"], "FromUserName": push["ToUserName"],
                             "CreateTime": int(time.time()), "MsgType": "text", "Content": self.replies[key]})
        if q.get("encrypt_type") == "aes":
            encrypted = aes_cipher(AES_KEY).encrypt(reply, APPID).decode()
            reply = xml_message({"Encrypt": encrypted, "MsgSignature": signature(TOKEN, "1", "2", encrypted),
                                 "TimeStamp": 1, "Nonce": "2"})
        return web.Response(text=reply, content_type="application/xml")

    def answer(self, push: dict) -> str:
        if push["MsgType"] == "text":
            self.tickets += 1
            number = f"A{self.tickets:03d}"
            self.standin.send_custom("o_worker", f"新诉求 {number}：{push['Content']}")
            return f"已收到，编号 {number}"
        return f"收到{push['MsgType']}{push.get('Recognition') or push.get('Label') or push.get('EventKey') or ''}"


@pytest.fixture
async def chat():
    service = FakeService()
    app = web.Application()
    app.router.add_post("/wechat", service.handle)
    webhook = TestServer(app)
    await webhook.start_server()
    standin = TestServer(create_standin(appid=APPID, secret=SECRET, token=TOKEN, aes_key=AES_KEY,
                                        webhook_url=str(webhook.make_url("/wechat"))))
    await standin.start_server()
    service.standin = standin.app[STANDIN_STATE]

    async def run(*lines: str | float, start_as: str = "张阿姨", safe: bool = False) -> list[str]:
        """Lines to type (a number: pause that long) -> everything printed."""
        printed: list[str] = []

        async def typed() -> AsyncIterator[str]:
            for line in lines:
                if isinstance(line, float):
                    await asyncio.sleep(line)
                else:
                    yield line

        await run_chat(str(standin.make_url("")), IDENTITIES, start_as=start_as, safe=safe,
                       input_lines=typed(), out=printed.append, poll_interval_s=0.02)
        return printed

    run.service = service
    yield run
    await standin.close()
    await webhook.close()


async def test_notifications_reach_only_their_identity_and_retry_is_deduplicated(chat):
    printed = await chat(
        "/as 李网格员", "/sub",
        "/as 张阿姨", "楼道灯坏了", "/retry",
        "/as 李网格员",
        "/as 王大爷",
        "/quit", "never typed")
    assert printed[1:] == [
        "张阿姨> /as 李网格员", "已切换为：李网格员",
        "李网格员> /sub", "公众号：收到event",
        "李网格员> /as 张阿姨", "已切换为：张阿姨",
        "张阿姨> 楼道灯坏了", "公众号：已收到，编号 A001",
        "张阿姨> /retry", "（重发上一条，MsgId 不变）", "公众号：已收到，编号 A001",
        "张阿姨> /as 李网格员", "已切换为：李网格员", "【通知】新诉求 A001：楼道灯坏了",
        "李网格员> /as 王大爷", "可选身份：张阿姨、李网格员",
        "李网格员> /quit", "再见！"]
    assert printed[0].startswith("邻里模拟聊天 · 当前身份：张阿姨")
    texts = [p for p in chat.service.pushes if p["MsgType"] == "text"]
    assert len(texts) == 2 and texts[0]["MsgId"] == texts[1]["MsgId"]
    assert len(chat.service.replies) == 2  # the subscribe and one complaint: the retry created nothing


async def test_notification_arriving_while_idle_is_polled(chat):
    standin = chat.service.standin
    await chat("/as 李网格员", "/sub")  # opens the worker's customer-service window
    standin.send_custom("o_worker", "请尽快签收")  # sent before the next session: history, not news
    session = asyncio.create_task(chat(0.3, "/quit", start_as="李网格员"))
    await asyncio.sleep(0.1)
    standin.send_custom("o_worker", "督办提醒")
    printed = await session
    assert printed.count("【通知】督办提醒") == 1 and "【通知】请尽快签收" not in printed
    assert printed.index("【通知】督办提醒") < printed.index("李网格员> /quit")


async def test_every_kind_of_message_and_safe_mode(chat):
    printed = await chat(
        "/safe on", "/voice 水管漏水了", "/safe off",
        "/image", "/location 30.59 114.30 江汉区某小区", "/click MY_TICKETS",
        "/location 北京", "/voice", "/bogus", "/help", "/as 李网格员", "/retry")
    assert "公众号：收到voice水管漏水了" in printed and "公众号：收到location江汉区某小区" in printed
    assert "公众号：收到eventMY_TICKETS" in printed and "公众号：收到image" in printed
    assert "安全模式：开" in printed and "安全模式：关" in printed
    assert "用法：/location 纬度 经度 地址" in printed and "用法：/voice 文字" in printed
    assert "没有这个命令，输入 /help 查看。" in printed and any("/as 名字" in p for p in printed)
    assert "还没有可以重发的消息。" in printed
    kinds = [(p["MsgType"], p["safe"]) for p in chat.service.pushes]
    assert kinds == [("voice", True), ("image", False), ("location", False), ("event", False)]
    assert printed[-1] == "再见！"


async def test_unknown_start_identity_is_refused(chat):
    with pytest.raises(ValueError, match="王大爷"):
        await chat("/quit", start_as="王大爷")


def test_a_template_notice_is_shown_with_its_fields_labels():
    from bot.simulator import notification_text

    shown = notification_text({"kind": "template", "text": "已办结…\n100071\n已办结\n2026年11月22日 10:00"})
    assert shown == "【模板消息·办理进度】事项：已办结…｜编号：100071｜状态：已办结｜时间：2026年11月22日 10:00"
    assert notification_text({"kind": "custom", "text": "【新工单】编号 100071"}) == "【通知】【新工单】编号 100071"
