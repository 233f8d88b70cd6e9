"""The webhook end to end: signed pushes in, receipts out, records stored once."""
from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from storage.models import InboundMessage, Ticket
from tests.conftest import TOKEN, reply_text


async def count(service, model) -> int:
    async with service.ctx.sessions() as s:
        return (await s.execute(select(func.count()).select_from(model))).scalar_one()


async def test_complaint_gets_a_receipt_with_a_stored_tracking_number(wechat, service):
    reply = await wechat.send("resident-1", "小区3栋门口的垃圾好几天没人清理了，很臭")
    assert "编号" in reply and "查询" in reply
    async with service.ctx.sessions() as s:
        ticket = (await s.execute(select(Ticket))).scalar_one()
    assert ticket.number in reply
    assert ticket.openid == "resident-1" and "垃圾" in ticket.text
    assert ticket.category == "environment"


async def test_url_verification_echoes_echostr(client, clock):
    from bot.signing import signature
    ts = str(int(clock()))
    resp = await client.get("/wechat", params={"signature": signature(TOKEN, ts, "42"), "timestamp": ts,
                                                "nonce": "42", "echostr": "hello123"})
    assert resp.status == 200 and await resp.text() == "hello123"
    resp = await client.get("/wechat", params={"signature": "0" * 40, "timestamp": ts, "nonce": "42", "echostr": "x"})
    assert resp.status == 403


async def test_concurrent_retries_create_one_ticket_and_share_the_reply(wechat, service):
    xml = wechat.xml("resident-2", "text", Content="楼道里的路灯坏了一个星期了")
    responses = await asyncio.gather(*(wechat.post(xml) for _ in range(3)))
    bodies = [reply_text(await r.text()) for r in responses]
    assert all(r.status == 200 for r in responses)
    assert len(set(bodies)) == 1 and "编号" in bodies[0]
    assert await count(service, Ticket) == 1
    assert await count(service, InboundMessage) == 1


async def test_a_retry_waiting_on_a_failed_first_delivery_handles_the_push_at_once(wechat, service, monkeypatch):
    import bot.delivery

    real_route, calls = bot.delivery.route, []

    async def crashes_first(msg, ctx, **options):
        calls.append(msg.dedupe_key)
        if len(calls) == 1:
            await asyncio.sleep(0.2)  # the retry arrives meanwhile and waits for this delivery
            raise RuntimeError("handler crashed")
        return await real_route(msg, ctx, **options)

    monkeypatch.setattr(bot.delivery, "route", crashes_first)
    xml = wechat.xml("resident-3", "text", Content="楼下的井盖松了，踩上去会晃")
    first = asyncio.create_task(wechat.post(xml))
    await asyncio.sleep(0.05)
    started = asyncio.get_running_loop().time()
    retry = reply_text(await (await wechat.post(xml)).text())
    waited = asyncio.get_running_loop().time() - started
    assert "编号" in retry and len(calls) == 2
    assert waited < 2  # not the 4 s a retry waits for a reply that never comes
    assert "编号" not in reply_text(await (await first).text())
    assert await count(service, Ticket) == 1


async def test_a_commit_slower_than_the_write_timeout_still_lands_and_its_retry_gets_the_receipt(wechat, service,
                                                                                                  monkeypatch):
    from handlers.texts import TRY_AGAIN_LATER

    transactions, real_run = service.writer._transactions, service.writer._transactions.run

    async def slow_run(fn, *args):
        await asyncio.sleep(0.3)
        return await real_run(fn, *args)

    monkeypatch.setattr(transactions, "run", slow_run)
    monkeypatch.setattr(service.delivery.limits, "write_timeout_s", 0.1)
    xml = wechat.xml("resident-4", "text", Content="小区东门的路灯不亮了")
    assert reply_text(await (await wechat.post(xml)).text()) == TRY_AGAIN_LATER  # not told: not stored yet
    await asyncio.sleep(0.5)
    assert await count(service, Ticket) == 1  # the commit went on without the caller
    monkeypatch.setattr(transactions, "run", real_run)  # the database is quick again when WeChat retries
    retry = reply_text(await (await wechat.post(xml)).text())
    assert "编号" in retry and await count(service, Ticket) == 1 and await count(service, InboundMessage) == 1
