"""Issue 4's whole loop, end to end: two app instances share one database, one Redis and one outbox; the
WeChat stand-in plays the platform in both directions; the clock travels for the overdue path.

resident reports -> worker notified -> accepts -> resolves -> resident rates;
resident reports -> nobody accepts -> reminder -> level-1 督办 to the committee head -> level-2 to the admin.
"""
from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import SERVICE, create_app
from bot.config import Settings
from bot.demo import DEMO_AES_KEY, DEMO_APPID, DEMO_SECRET, DEMO_TOKEN, IDENTITIES
from bot.standin import STANDIN_STATE, create_standin, start_standin
from storage.accounts import create_invite
from storage.community import seed_demo
from storage.db import sessionmaker
from tests.conftest import TravellingNow

RESIDENT, WORKER, HEAD = IDENTITIES["张阿姨"], IDENTITIES["王网格员"], IDENTITIES["陈主任"]
ADMIN = "e2e-admin"


@pytest.fixture
async def platform(database_url, redis_url):
    """The stand-in and two services behind it, like two app processes behind one proxy."""
    standin_app = create_standin(appid=DEMO_APPID, secret=DEMO_SECRET, token=DEMO_TOKEN, aes_key=DEMO_AES_KEY,
                                 webhook_url="")
    standin = await start_standin(standin_app)
    now = TravellingNow()
    prefix = f"linli-e2e-{uuid.uuid4().hex}:"
    settings = Settings(wechat_token=DEMO_TOKEN, wechat_appid=DEMO_APPID, wechat_secret=DEMO_SECRET,
                        wechat_aes_key=DEMO_AES_KEY, database_url=database_url, redis_url=redis_url,
                        wechat_api_base=standin.url)
    servers = [TestServer(create_app(settings, now=now, migrate=True, state_prefix=prefix, background=False))
               for _ in range(2)]
    for server in servers:
        await server.start_server()
    services = [server.app[SERVICE] for server in servers]
    await seed_demo(services[0].engine, IDENTITIES)
    state = standin_app[STANDIN_STATE]
    async with aiohttp.ClientSession() as http:
        yield Platform(http, standin.url, state, servers, services, now)
    for server in servers:
        await server.close()
    await standin.close()


class Platform:
    def __init__(self, http, url, state, servers, services, now) -> None:
        self.http, self.url, self.state, self.servers, self.services, self.now = http, url, state, servers, services, now
        self.turn = 0

    async def say(self, openid: str, text: str) -> str:
        """A text message through the stand-in, to the two services in turn (a proxy's round robin)."""
        server = self.servers[self.turn % 2]
        self.turn += 1
        self.state.webhook_url = str(server.make_url("/wechat"))
        async with self.http.post(f"{self.url}/_standin/push",
                                  json={"openid": openid, "type": "text", "content": text, "safe": True}) as r:
            body = await r.json()
        assert body["status"] == 200, body
        return body["reply"]

    async def deliver(self) -> None:
        """Both processes' senders at once, over the same outbox."""
        await asyncio.gather(*(s.sender.run_once() for s in self.services))

    async def tick(self) -> None:
        """Both processes' schedulers at once; only the lease holder runs the jobs."""
        led = await asyncio.gather(*(s.scheduler.tick() for s in self.services))
        assert sorted(led) == [False, True]

    async def sent(self, openid: str) -> list[str]:
        async with self.http.get(f"{self.url}/_standin/sent", params={"openid": openid}) as r:
            return [m["text"] for m in await r.json()]


def number_in(text: str) -> str:
    return re.search(r"(\d{6,})", text).group(1)


async def test_report_accept_resolve_rate_through_two_processes(platform):
    p = platform
    for who in (WORKER, HEAD):
        await p.say(who, "你好")  # staff have written to the account: their customer-service window is open
    number = number_in(await p.say(RESIDENT, "3栋楼道的灯坏了好几天，晚上看不见"))
    await p.deliver()
    worker_inbox = await p.sent(WORKER)
    assert len(worker_inbox) == 1 and number in worker_inbox[0] and "签收" in worker_inbox[0]

    assert "已签收" in await p.say(WORKER, f"签收 {number}")
    assert "已办结" in await p.say(WORKER, f"办结 {number} 已更换灯泡")
    await p.deliver()
    await p.deliver()  # nothing is sent twice, however often the senders run
    [both] = await p.sent(RESIDENT)  # due together: one message, in order
    assert both.startswith("【2条新通知】") and both.index("签收") < both.index("已更换灯泡") < both.index("解决了吗")

    assert "满意吗" in await p.say(RESIDENT, "1")
    assert "感谢" in await p.say(RESIDENT, "1")
    assert "已结束" in await p.say(RESIDENT, f"查询 {number}")
    assert len(await p.sent(WORKER)) == 1


async def test_overdue_ticket_is_reminded_then_escalated_twice(platform):
    p = platform
    async with sessionmaker(p.services[0].engine)() as session, session.begin():
        code = (await create_invite(session, role="admin", now=p.now(), hours=24, name="管理员")).code
    assert "管理员" in await p.say(ADMIN, code)  # the admin binds the role with a one-time code
    for who in (WORKER, HEAD, ADMIN):
        await p.say(who, "你好")
    number = number_in(await p.say(RESIDENT, "楼下垃圾桶满了三天没人清理，很臭"))
    await p.deliver()
    await p.tick()
    await p.deliver()
    assert len(await p.sent(WORKER)) == 1  # the new-ticket notice only: nothing is due yet

    p.now.offset = timedelta(hours=20)  # 4 of the 24 response hours left: the reminder
    await p.tick()
    await p.deliver()
    assert number in (await p.sent(WORKER))[-1] and len(await p.sent(WORKER)) == 2
    await p.tick()
    await p.deliver()
    assert len(await p.sent(WORKER)) == 2  # reminded once

    p.now.offset = timedelta(hours=25)  # past the response limit: level-1 督办 to the committee head
    await p.tick()
    await p.deliver()
    assert any(number in m for m in await p.sent(HEAD))
    assert not any(number in m for m in await p.sent(ADMIN))

    p.now.offset = timedelta(hours=25 + 25)  # a further day: level 2, to the admin
    await p.tick()
    await p.deliver()
    assert any(number in m for m in await p.sent(ADMIN))
    head_count = len(await p.sent(HEAD))
    await p.tick()
    await p.deliver()
    assert len(await p.sent(HEAD)) == head_count  # each level once


async def test_a_notice_nobody_could_send_is_shown_at_the_next_message(platform):
    p = platform  # the worker never wrote to the account and no template is configured: no channel is open
    number = number_in(await p.say(RESIDENT, "小区里的路灯坏了两盏"))
    await p.deliver()
    assert await p.sent(WORKER) == []
    reply = await p.say(WORKER, "待签收")
    assert reply.startswith("【您有未读消息】") and number in reply.split("——————")[0]
    assert "未读" not in await p.say(WORKER, "待签收")  # shown once
