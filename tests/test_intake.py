"""A resident's conversation with the account: receipts, follow-ups, queries, menus, limits."""
from __future__ import annotations

import re
from dataclasses import replace

from sqlalchemy import select

from storage.models import Attachment, Ticket, TicketEvent


def number_in(reply: str) -> str:
    return re.search(r"编号[：: ]*(\d{6,})", reply).group(1)


async def tickets_of(service, openid: str) -> list[Ticket]:
    async with service.ctx.sessions() as s:
        return list((await s.execute(select(Ticket).where(Ticket.openid == openid).order_by(Ticket.id))).scalars())


async def attachments(service) -> list[Attachment]:
    async with service.ctx.sessions() as s:
        return list((await s.execute(select(Attachment).order_by(Attachment.id))).scalars())


async def test_receipt_is_plain_chinese_with_number_category_next_step(wechat):
    reply = await wechat.send("r1", "楼下垃圾桶满了好几天没人清理")
    number = number_in(reply)
    assert "环境卫生" in reply
    assert "社区值班人员" in reply and "联系您" in reply  # not yet bound to a household: the duty desk
    assert f"查询 {number}" in reply


async def test_tracking_numbers_are_unique_and_carry_a_check_digit(wechat, service):
    from storage.ids import is_valid_ticket_number

    numbers = {number_in(await wechat.send(f"r{i}", f"{i}号楼电梯又坏了，物业不管")) for i in range(5)}
    assert len(numbers) == 5 and all(is_valid_ticket_number(n) for n in numbers)


async def test_picture_and_place_after_a_complaint_attach_to_it(wechat, service):
    number = number_in(await wechat.send("r2", "小区门口的路灯不亮了"))
    reply = await wechat.push("r2", "image", PicUrl="http://img/1.jpg", MediaId="m1")
    assert number in reply and "照片" in reply
    reply = await wechat.push("r2", "location", Location_X="31.2304", Location_Y="121.4737", Scale="15",
                              Label="幸福小区3栋")
    assert number in reply and "位置" in reply
    items = await attachments(service)
    ticket = (await tickets_of(service, "r2"))[0]
    assert [a.kind for a in items] == ["image", "location"] and all(a.ticket_id == ticket.id for a in items)
    assert items[1].latitude == 31.2304 and items[1].text == "幸福小区3栋"


async def test_picture_first_then_words_makes_one_ticket_with_the_picture(wechat, service):
    reply = await wechat.push("r3", "image", PicUrl="http://img/2.jpg", MediaId="m2")
    assert "一句话" in reply
    await wechat.send("r3", "这里有人乱扔建筑垃圾")
    ticket = (await tickets_of(service, "r3"))[0]
    assert [(a.kind, a.ticket_id) for a in await attachments(service)] == [("image", ticket.id)]


async def test_picture_long_after_the_complaint_waits_for_new_words(wechat, service, clock):
    await wechat.send("r4", "绿化带里的垃圾很久没人收拾")
    await service.ctx.state.delete("last_ticket:r4")  # what the attach window's expiry does
    reply = await wechat.push("r4", "image", PicUrl="http://img/3.jpg", MediaId="m3")
    assert "一句话" in reply
    assert (await attachments(service))[0].ticket_id is None


async def test_voice_with_recognition_becomes_a_ticket_with_the_recording(wechat, service):
    reply = await wechat.push("r5", "voice", MediaId="v1", Format="amr", Recognition="楼上装修太吵了天天打电钻")
    number = number_in(reply)
    ticket = (await tickets_of(service, "r5"))[0]
    assert ticket.number == number and "装修" in ticket.text
    assert [(a.kind, a.media_id) for a in await attachments(service)] == [("voice", "v1")]


async def test_query_shows_own_ticket_only(wechat):
    number = number_in(await wechat.send("r6", "地下车库的灯坏了好多"))
    mine = await wechat.send("r6", f"查询 {number}")
    assert number in mine and "提交" in mine and "车库" in mine
    theirs = await wechat.send("r7", f"查询 {number}")
    assert "没有找到" in theirs and "车库" not in theirs
    assert "没有找到" in await wechat.send("r6", "查询 999999")
    assert "查询" in await wechat.send("r6", "查询 abc")  # explains how, files nothing


async def test_my_tickets_lists_only_the_residents_own(wechat, service):
    a = number_in(await wechat.send("r8", "小区里有狗乱叫扰民"))
    b = number_in(await wechat.send("r8", "消防通道被车堵住了"))
    other = number_in(await wechat.send("r9", "垃圾分类桶太少了"))
    listing = await wechat.send("r8", "我的诉求")
    assert a in listing and b in listing and other not in listing
    assert "还没有" in await wechat.send("r10", "我的诉求")


async def test_subscribe_welcomes_with_numbered_choices_and_menu_clicks_work(wechat):
    welcome = await wechat.push("r11", "event", Event="subscribe")
    assert "1 反映问题" in welcome and "2 我的诉求" in welcome
    await wechat.send("r11", "健身器材坏了小孩容易受伤")
    listing = await wechat.push("r11", "event", Event="CLICK", EventKey="MY_TICKETS")
    assert "健身器材" in listing
    assert "打字" in await wechat.push("r11", "event", Event="CLICK", EventKey="REPORT")
    assert "我的诉求" in await wechat.send("r11", "2") or "健身器材" in await wechat.send("r11", "2")


async def test_unsure_classification_asks_with_numbered_choices(wechat, service):
    reply = await wechat.send("r12", "那个东西又出问题了，麻烦来看看吧")
    assert "回复数字" in reply and "1 " in reply
    number = number_in(reply)
    assert len(await tickets_of(service, "r12")) == 1  # stored before asking: nothing lost
    assert "请回复一个数字" in await wechat.send("r12", "啥")  # nonsense: asked again, question kept
    assert number in await wechat.send("r12", f"查询 {number}")  # a command is answered, the question stays open
    assert "查询" in await wechat.send("r12", "查询 abc")
    answer = await wechat.send("r12", "1")
    assert number in answer and "归为" in answer
    ticket = (await tickets_of(service, "r12"))[0]
    async with service.ctx.sessions() as s:
        actions = list((await s.execute(select(TicketEvent.action).where(TicketEvent.ticket_id == ticket.id))).scalars())
    assert actions == ["created", "dispatched", "categorised"]


async def test_a_newer_question_owns_the_digit(wechat, service):
    """`我的诉求` numbers the tickets: after it, 1 opens ticket 1 instead of answering the category question."""
    number = number_in(await wechat.send("r12b", "那个东西又出问题了，麻烦来看看吧"))
    listing = await wechat.send("r12b", "我的诉求")
    assert f"1 {number}" in listing
    shown = await wechat.send("r12b", "1")
    assert f"编号 {number}" in shown and "现在：" in shown
    ticket = (await tickets_of(service, "r12b"))[0]
    assert ticket.confidence < 1.0  # not categorised by the digit


async def test_gibberish_and_smalltalk_file_nothing(wechat, service):
    for text in ("？？", "asdf", "谢谢", "哈哈"):
        reply = await wechat.send("r13", text)
        assert reply
    assert await tickets_of(service, "r13") == []


async def test_rate_limit_is_polite_and_keeps_what_was_acknowledged(wechat, service):
    service.delivery.limits = replace(service.delivery.limits, rate_count=2)
    first_id = wechat.next_msg_id()
    first = await wechat.send("r14", "楼道堆满杂物有火灾隐患", msg_id=first_id)
    await wechat.send("r14", "单元门坏了关不上")
    limited = await wechat.send("r14", "还有路灯也坏了")
    assert "一分钟" in limited
    assert len(await tickets_of(service, "r14")) == 2
    assert await wechat.send("r14", "楼道堆满杂物有火灾隐患", msg_id=first_id) == first  # retry: same receipt
    assert "编号" in await wechat.send("r15", "别的居民不受影响")


async def test_emergency_tells_the_resident_whom_to_call(wechat):
    reply = await wechat.send("r16", "3栋2单元着火了，冒了好多烟")
    assert "119" in reply and "编号" in reply


async def test_repeats_are_recognised_after_a_restart_of_the_embedded_default(settings, clock, tmp_path):
    """In-process state starts empty; the service rebuilds who has open tickets from the database."""
    import uuid

    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import create_app
    from tests.conftest import WeChat

    import pytest

    if settings.redis_url:
        pytest.skip("Redis keeps the flags across restarts: this is about the in-process state")
    first = None
    for _ in range(2):
        app = create_app(settings, clock=clock, migrate=True, state_prefix=f"t-{uuid.uuid4().hex}:",
                         background=False)
        async with TestClient(TestServer(app)) as client:
            reply = await WeChat(client, clock).send("r-restart", "小区南门的路灯坏了好几天了")
            first = first or number_in(reply)
    assert "已经反映过" in reply and first in reply
