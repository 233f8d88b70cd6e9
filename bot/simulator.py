"""The terminal chat of `linli demo`: type as a resident (or as staff), see the account's replies.

Each line goes through the WeChat stand-in (`/_standin/push`), which sends the service a real signed XML push;
the passive reply is printed, and so are the notifications the service sends to the current identity through
the WeChat API (polled from `/_standin/sent`).
"""
from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable

import aiohttp

HELP = """命令：
  /as 名字              切换身份
  /safe on|off          安全模式（加密推送）开关
  /image                发一张图片
  /voice 文字           发一条语音（带识别文字）
  /location 纬度 经度 地址  发送位置
  /sub                  关注公众号
  /click KEY            点击菜单
  /retry                重发上一条（MsgId 相同，看去重）
  /help                 显示本帮助
  /quit                 退出
其他内容直接作为文字消息发出。"""


def notification_text(message: dict) -> str:
    """A notice as the phone shows it: a customer-service message as it is; a template message (sent outside
    the 48-hour window) with its fields' labels, as WeChat renders the 办理进度 template."""
    if message.get("kind") != "template":
        return f"【通知】{message['text']}"
    from bot.sender import TEMPLATE_LABELS

    values = message["text"].split("\n")
    fields = [f"{label}：{value}" for label, value in zip(TEMPLATE_LABELS, values)] + values[len(TEMPLATE_LABELS):]
    return "【模板消息·办理进度】" + "｜".join(fields)


class ChatSession:
    """One terminal chat: the current identity, safe mode, and which notifications were already shown."""

    def __init__(self, http: aiohttp.ClientSession, standin_url: str, identities: dict[str, str],
                 start_as: str, safe: bool, out: Callable[[str], object]) -> None:
        if start_as not in identities:
            raise ValueError(f"unknown identity {start_as!r}; known: {', '.join(identities)}")
        self.http, self.base = http, standin_url.rstrip("/")
        self.identities, self.name, self.safe, self.out = identities, start_as, safe, out
        self.seen: dict[str, int] = {}  # openid -> highest /_standin/sent seq already shown
        self.pushed: set[str] = set()  # identities that sent something in this chat, so /retry has a target
        self.printing = asyncio.Lock()  # a reply and the notifications it caused print together

    @property
    def openid(self) -> str:
        return self.identities[self.name]

    @property
    def prompt(self) -> str:
        return f"{self.name}> "

    async def start(self) -> None:
        """Notifications sent before this session are history, not news."""
        async with self.http.get(f"{self.base}/_standin/sent") as resp:
            sent = await resp.json()
        latest = sent[-1]["seq"] if sent else 0
        self.seen = {openid: latest for openid in self.identities.values()}
        self.out(f"邻里模拟聊天 · 当前身份：{self.name}{'（安全模式）' if self.safe else ''}。输入 /help 查看命令。")

    async def show_notifications(self) -> None:
        openid = self.openid
        async with self.http.get(f"{self.base}/_standin/sent",
                                 params={"openid": openid, "after": str(self.seen[openid])}) as resp:
            sent = await resp.json()
        for message in sent:
            self.out(notification_text(message))
            self.seen[openid] = message["seq"]

    async def handle(self, line: str) -> bool:
        """Act on one typed line; False when the chat should end."""
        command, _, args = line.strip().partition(" ")
        args = args.strip()
        if not command:
            return True
        if not command.startswith("/"):
            await self.push({"type": "text", "content": line.strip()})
        elif command == "/quit":
            return False
        elif command == "/help":
            self.out(HELP)
        elif command == "/as":
            await self.switch(args)
        elif command == "/safe":
            self.set_safe(args)
        elif command == "/image":
            await self.push({"type": "image"})
        elif command == "/voice" and args:
            await self.push({"type": "voice", "recognition": args})
        elif command == "/location":
            await self.push_location(args)
        elif command == "/sub":
            await self.push({"type": "event", "event": "subscribe"})
        elif command == "/click" and args:
            await self.push({"type": "event", "event": "CLICK", "event_key": args})
        elif command == "/retry" and self.openid not in self.pushed:
            self.out("还没有可以重发的消息。")
        elif command == "/retry":
            self.out("（重发上一条，MsgId 不变）")
            await self.push({"repeat_last": True})
        elif command in ("/voice", "/click"):
            self.out(f"用法：{command} {'文字' if command == '/voice' else 'KEY'}")
        else:
            self.out("没有这个命令，输入 /help 查看。")
        return True

    async def switch(self, name: str) -> None:
        if name not in self.identities:
            self.out(f"可选身份：{'、'.join(self.identities)}")
            return
        self.name = name
        self.out(f"已切换为：{name}")
        async with self.printing:
            await self.show_notifications()  # what arrived for this identity while we were away

    def set_safe(self, arg: str) -> None:
        if arg in ("on", "off"):
            self.safe = arg == "on"
        self.out(f"安全模式：{'开' if self.safe else '关'}")

    async def push_location(self, args: str) -> None:
        parts = args.split(maxsplit=2)
        try:
            lat, lon = float(parts[0]), float(parts[1])
        except (IndexError, ValueError):
            self.out("用法：/location 纬度 经度 地址")
            return
        await self.push({"type": "location", "lat": lat, "lon": lon, "label": parts[2] if len(parts) > 2 else ""})

    async def push(self, spec: dict) -> None:
        async with self.printing:
            try:
                async with self.http.post(f"{self.base}/_standin/push",
                                          json={"openid": self.openid, "safe": self.safe, **spec}) as resp:
                    if resp.status != 200:
                        self.out(f"（模拟器出错：{await resp.text()}）")
                        return
                    result = await resp.json()
                    self.pushed.add(self.openid)
            except aiohttp.ClientError as e:
                self.out(f"（连不上微信模拟服务：{e}）")
                return
            if result["error"]:
                self.out(f"（该公众号暂时无法提供服务：{result['error']}）")
            elif result["reply"] is None:
                self.out("（公众号没有回复）")
            else:
                self.out(f"公众号：{result['reply']}")
            await self.show_notifications()

    async def poll_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            async with self.printing:
                try:
                    await self.show_notifications()
                except aiohttp.ClientError:
                    pass  # the stand-in went away; the next typed line reports it


async def _stdin_lines(session: ChatSession, interactive: bool) -> AsyncIterator[str]:
    """Lines from stdin, read in a thread so the loop keeps polling notifications meanwhile."""
    while True:
        if interactive:
            try:
                yield await asyncio.to_thread(input, session.prompt)
            except EOFError:
                return
        else:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return
            yield line.rstrip("\n")


async def _echoed(lines: AsyncIterator[str], session: ChatSession) -> AsyncIterator[str]:
    """Scripted lines, shown after the prompt as if typed, so a transcript reads like a chat."""
    async for line in lines:
        session.out(f"{session.prompt}{line}")
        yield line


async def run_chat(standin_url: str, identities: dict[str, str], *, start_as: str, safe: bool,
                   input_lines: AsyncIterator[str] | None = None, out: Callable[[str], object] = print,
                   poll_interval_s: float = 1.0) -> None:
    """Chat through the stand-in until /quit or the end of input. identities: display name -> openid."""
    async with aiohttp.ClientSession() as http:
        session = ChatSession(http, standin_url, identities, start_as, safe, out)
        await session.start()
        if input_lines is not None:
            lines = _echoed(input_lines, session)
        elif sys.stdin.isatty():
            lines = _stdin_lines(session, interactive=True)
        else:
            lines = _echoed(_stdin_lines(session, interactive=False), session)
        poller = asyncio.create_task(session.poll_forever(poll_interval_s))
        try:
            async for line in lines:
                if not await session.handle(line):
                    break
            async with session.printing:
                await session.show_notifications()  # whatever arrived after the last line
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        out("再见！")
