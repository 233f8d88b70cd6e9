"""The hallway under careless and hostile use: each class of failure the chat layer once had, through the webhook.

1 an emergency is heard in every state and past every limit; 2 text is normalised before anything matches it;
3 not everything is a complaint; 4 a digit answers the last question asked; 5 staff act only on what is
theirs; 6 lists that scale; 7 dedupe keys belong to a sender; 8 a double send is one ticket; 9 signatures,
guessing and ids; 10 a dialogue never swallows a command.
"""
from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from sqlalchemy import func, select

from bot.signing import sign_push
from handlers import accounts
from handlers.routing import QUESTION_KEY, open_question
from storage.models import InboundMessage, Outbox, Staff, Ticket, TicketEvent
from tests.conftest import APPID, TOKEN, reply_text
from tests.test_dispatch import (ADMIN, DUTY, HEAD, NEIGHBOUR, RESIDENT, STRANGER, WORKER, WORKER2, community,  # noqa: F401
                                 number_in, outbox, ticket)

WORKER3 = "worker-3"  # a colleague of WORKER in grid 1
GAS = "煤气泄漏了"


async def tickets(service, openid: str | None = None) -> list[Ticket]:
    async with service.ctx.sessions() as s:
        q = select(Ticket).order_by(Ticket.id)
        if openid:
            q = q.where(Ticket.openid == openid)
        return list((await s.execute(q)).scalars())


async def add_colleague(service) -> None:
    async with service.ctx.sessions() as s:
        s.add(Staff(openid=WORKER3, role="grid_worker", grid_id=1, name="孙丽", created_at=datetime(2026, 11, 22)))
        await s.commit()
    service.ctx.directory.invalidate()


async def resolved_ticket(wechat, service) -> str:
    number = number_in(await wechat.send(RESIDENT, "楼下垃圾桶满了三天没人清理，很臭"))
    await wechat.send(WORKER, f"签收 {number}")
    await wechat.send(WORKER, f"办结 {number} 已经清理干净")
    return number


# ---- 1. an emergency is heard in every state ---------------------------------------------------------

@pytest.mark.parametrize("state", ["category", "binding", "owner", "menu", "mine", "rating", "staff list"])
async def test_an_emergency_is_heard_whatever_question_is_open(wechat, service, community, state):
    who = RESIDENT
    if state == "category":
        await wechat.send(who, "那个东西又出问题了，麻烦来看看吧")
    elif state == "binding":
        await wechat.send(who, "绑定")
    elif state == "owner":
        await wechat.send(who, "绑定 3栋2单元501")
    elif state == "menu":
        await wechat.send(who, "你好")
    elif state == "mine":
        await wechat.send(who, "小区门口的路灯不亮了")
        await wechat.send(who, "我的诉求")
    elif state == "rating":
        await resolved_ticket(wechat, service)
    elif state == "staff list":
        who = DUTY
        for i in range(12):
            await wechat.send(f"r-list-{i}", f"{i}号楼门口垃圾堆了好几天")
        await wechat.send(who, "待签收")
    assert await open_question(service.ctx, who) is not None, state
    before = len(await tickets(service, who))
    reply = await wechat.send(who, GAS)
    assert reply.startswith("【紧急】") and "119" in reply and "编号" in reply, (state, reply)
    mine = await tickets(service, who)
    assert len(mine) == before + 1 and mine[-1].emergency == "gas"
    assert any("【紧急】" in n for n in await outbox(service, DUTY))  # the duty desk is alerted at once


async def test_an_emergency_past_the_rate_limit_is_stored_and_alerted(wechat, service, community):
    service.delivery.limits = replace(service.delivery.limits, rate_count=2)
    await wechat.send(STRANGER, "单元门坏了关不上")
    await wechat.send(STRANGER, "楼道灯也坏了")
    assert "一分钟" in await wechat.send(STRANGER, "还有路灯也坏了")  # an ordinary message: limited
    reply = await wechat.send(STRANGER, "着火了快来")
    assert "119" in reply and "编号" in reply
    assert [t.emergency for t in await tickets(service, STRANGER)][-1] == "fire"


async def test_more_words_about_one_emergency_stay_on_its_ticket(wechat, service, community):
    first = number_in(await wechat.send(STRANGER, GAS))
    again = await wechat.send(STRANGER, "煤气味越来越大了")
    assert again.startswith("【紧急】") and first in again
    assert len(await tickets(service, STRANGER)) == 1


async def test_a_staff_command_about_a_fire_is_work_not_a_new_emergency(wechat, service, community):
    number = number_in(await wechat.send(RESIDENT, "3栋楼道着火了"))
    await wechat.send(WORKER, f"签收 {number}")
    assert "已办结" in await wechat.send(WORKER, f"办结 {number} 火已扑灭，无人受伤")
    assert len(await tickets(service)) == 1


async def test_a_voice_note_in_the_attach_window_that_is_an_emergency_is_its_own_ticket(wechat, service):
    await wechat.send("r-voice", "楼下的井盖松了")
    reply = await wechat.push("r-voice", "voice", MediaId="v9", Format="amr", Recognition="家里燃气泄漏了")
    assert "119" in reply
    assert [t.emergency for t in await tickets(service, "r-voice")] == [None, "gas"]


# ---- 2. text is normalised before anything matches it ---------------------------------------------------

INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u200e", "\u200f", "\u202a", "\u00ad"]
TRAILING = ["。", "！", "?", "？", "~", "～", "…", "!", ".", "😊", "】", " "]


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


async def test_normalised_commands_are_commands(wechat, service, community):
    number = number_in(await wechat.send(RESIDENT, "地下车库的灯坏了好多"))
    assert "车库" in await wechat.send(RESIDENT, f"查询 {full_width(number)}")
    assert "车库" in await wechat.send(RESIDENT, f"查\u200b询 {number}")
    assert "车库" in await wechat.send(RESIDENT, "我的诉求。")
    assert "已签收" in await wechat.send(WORKER, f"签\u200b收 {number}")
    assert "已签收" in (await wechat.send(WORKER, f"签收　{full_width(number)}！"))  # ideographic space, full stop
    assert len(await tickets(service)) == 1
    stored = (await tickets(service))[0]
    assert stored.text == "地下车库的灯坏了好多"  # the record keeps what was written


@hsettings(max_examples=60, deadline=None)
@given(command=st.sampled_from(["我的诉求", "帮助", "我的身份", "绑定", "待确认"]),
       marks=st.lists(st.sampled_from(INVISIBLE), max_size=3), tail=st.lists(st.sampled_from(TRAILING), max_size=2),
       wide=st.booleans(), at=st.integers(0, 4))
def test_normalise_leaves_a_command_itself(command, marks, tail, wide, at):
    from handlers.normalise import command_words, normalise

    at = min(at, len(command))
    typed = command[:at] + "".join(marks) + command[at:] + "".join(tail)
    assert command_words(normalise(full_width(typed) if wide else typed)) == command


# ---- 3. not everything is a complaint --------------------------------------------------------------

async def test_numbers_fragments_and_codes_file_nothing(wechat, service, community):
    for text in ("5", "14", "123456", "ok", "???", "abc", "👍", "K7Q2M9XZ"):
        reply = await wechat.send(STRANGER, text)
        assert reply and "编号：" not in reply, (text, reply)
    assert await tickets(service, STRANGER) == []


async def test_a_tracking_number_alone_shows_that_ticket_to_its_owner_only(wechat, service, community):
    number = number_in(await wechat.send(RESIDENT, "小区门口的路灯不亮了"))
    assert "路灯" in await wechat.send(RESIDENT, number)
    theirs = await wechat.send(NEIGHBOUR, number)
    assert "没有找到" in theirs and "路灯" not in theirs
    assert len(await tickets(service)) == 1


# ---- 4. a digit answers the last question asked ------------------------------------------------------

async def test_the_menu_after_the_rating_question_owns_the_digit(wechat, service, community):
    number = await resolved_ticket(wechat, service)
    assert "1 反映问题" in await wechat.send(RESIDENT, "你好")  # a newer question
    listing = await wechat.send(RESIDENT, "2")  # 我的诉求, not 没解决
    assert number in listing and "您最近反映的事" in listing
    t = await ticket(service, number)
    assert (t.status, t.solved, t.reopen_count) == ("resolved", None, 0)
    assert not [n for n in await outbox(service, HEAD) if "重新办理" in n]  # nobody was told of a reopening
    assert "解决了吗" in await wechat.send(RESIDENT, f"评价 {number}")  # the question can be asked again
    assert "满意吗" in await wechat.send(RESIDENT, "1")
    assert "感谢" in await wechat.send(RESIDENT, "2")
    t = await ticket(service, number)
    assert (t.status, t.solved, t.rating) == ("closed", True, 2)


async def test_a_digit_with_no_question_known_asks_again_and_records_nothing(wechat, service, community):
    number = await resolved_ticket(wechat, service)
    await service.ctx.state.delete(QUESTION_KEY + RESIDENT)  # what a Redis restart or the timeout does
    reply = await wechat.send(RESIDENT, "2")
    assert number in reply and "解决了吗" in reply  # asked, not taken for 没解决
    assert (await ticket(service, number)).solved is None
    assert "满意吗" in await wechat.send(RESIDENT, "2")  # now it answers the question just asked
    assert (await ticket(service, number)).solved is False


async def test_the_answers_wording_fits_the_answer(wechat, service, community):
    number = await resolved_ticket(wechat, service)
    await wechat.send(RESIDENT, "2")  # 没解决
    reply = await wechat.send(RESIDENT, "2")  # 基本满意
    assert "抱歉没让您满意" not in reply and "还没解决" in reply and number in reply
    assert (await ticket(service, number)).status == "reopened"


async def test_numbered_choices_are_numbered_without_gaps(wechat, service):
    for reply in (await wechat.send("r-gaps", "嗯"), await wechat.send("r-gaps", "你好")):
        digits = [line.split()[0] for line in reply.splitlines() if line[:1].isdigit()]
        assert digits == [str(i) for i in range(1, len(digits) + 1)], reply


# ---- 5. staff act only on what is theirs -----------------------------------------------------------

async def test_a_colleague_cannot_take_over_an_accepted_ticket(wechat, service, community):
    await add_colleague(service)
    number = number_in(await wechat.send(RESIDENT, "楼道的灯坏了好几天了，晚上看不见"))
    await wechat.send(WORKER, f"签收 {number}")
    for command in (f"退回 {number} 不归我", f"转派 {number} 物业 给物业", f"回复 {number} 我来看看"):
        assert "不是您的工单" in await wechat.send(WORKER3, command), command
    assert not [n for n in await outbox(service, RESIDENT) if "我来看看" in n]
    t = await ticket(service, number)
    assert (t.route, t.status) == ("grid_worker", "accepted")


async def test_a_supervisor_may_move_it_and_the_handler_and_resident_are_told(wechat, service, community):
    number = number_in(await wechat.send(RESIDENT, "楼道的灯坏了好几天了，晚上看不见"))
    await wechat.send(WORKER, f"签收 {number}")
    assert "转派给" in await wechat.send(HEAD, f"转派 {number} 物业 属于物业维修范围")
    assert any(number in n and "不用再处理" in n for n in await outbox(service, WORKER))
    told = [n for n in await outbox(service, RESIDENT) if "转交给物业公司" in n]
    assert told and "维修范围" not in told[0]  # plain words, not a colleague's reason
    assert "退回" in await wechat.send(ADMIN, f"退回 {number} 物业说不归他们")
    shown = await wechat.send(RESIDENT, f"查询 {number}")
    assert "重新安排办理人" in shown and "不归他们" not in shown and "维修范围" not in shown
    assert "不归他们" in await wechat.send(ADMIN, f"工单 {number}")  # staff see the reasons


async def test_reassigning_to_a_grid_worker_needs_a_grid_when_the_resident_is_unbound(wechat, service, community):
    number = number_in(await wechat.send(STRANGER, "小区门口的垃圾没人清理"))
    asked = await wechat.send(DUTY, f"转派 {number} 网格员 门口归网格管")
    assert "哪个网格" in asked and "1" in asked
    assert (await ticket(service, number)).route == "duty_desk"
    assert "转派给" in await wechat.send(DUTY, f"转派 {number} 网格员 2 门口归2网格管")
    t = await ticket(service, number)
    assert (t.route, t.grid_id) == ("grid_worker", 2)
    assert any(number in n for n in await outbox(service, WORKER2))


async def test_everyone_alerted_to_an_emergency_can_open_it(wechat, service, community):
    number = number_in(await wechat.send(RESIDENT, "3栋有人晕倒了"))
    for who in (WORKER, HEAD, DUTY):
        assert any(n.startswith("【紧急】") for n in await outbox(service, who)), who
        assert "晕倒" in await wechat.send(who, f"工单 {number}"), who
    assert "不是您的工单" in await wechat.send(WORKER2, f"工单 {number}")


# ---- 6. lists that scale ----------------------------------------------------------------------------------

async def test_staff_lists_are_most_urgent_first_and_paged(wechat, service, community):
    for i in range(14):
        await wechat.send(f"r-many-{i}", f"{i}号楼门口垃圾堆了好几天没人收")
    emergency = number_in(await wechat.send("r-many-x", "楼道里有人摔倒了起不来"))
    first = await wechat.send(DUTY, "待签收")
    lines = [line for line in first.splitlines() if line[:1] in "【1"]
    assert "共15件" in first and len(lines) == 10 and emergency in lines[0] and "【紧急】" in lines[0]
    assert "下一页" in first
    second = await wechat.send(DUTY, "下一页")
    assert "第11–15件" in second and "下一页”看后面" not in second
    assert "后面没有了" in await wechat.send(DUTY, "下一页")


async def test_nothing_overdue_says_what_is_waiting(wechat, service, community):
    await wechat.send(RESIDENT, "楼下垃圾桶满了三天没人清理")
    reply = await wechat.send(WORKER, "逾期")
    assert "没有逾期" in reply and "待签收1件" in reply


# ---- 7. dedupe keys belong to a sender ------------------------------------------------------------------

async def test_a_msgid_reused_by_another_sender_is_another_message(wechat, service):
    msg_id = wechat.next_msg_id()
    mine = await wechat.send("r-a", "楼下的路灯坏了好几天", msg_id=msg_id)
    theirs = await wechat.send("r-b", "小区门口的井盖松了", msg_id=msg_id)
    assert number_in(mine) != number_in(theirs) and "井盖" not in mine
    assert [len(await tickets(service, who)) for who in ("r-a", "r-b")] == [1, 1]
    await service.ctx.state.inner.close()  # the shared state forgets everything (a restart)
    again = await wechat.send("r-c", "三号楼电梯坏了", msg_id=msg_id)
    assert number_in(again) not in (number_in(mine), number_in(theirs))


# ---- 8. a double-sent complaint is one ticket ---------------------------------------------------------

async def test_the_same_words_sent_twice_at_once_make_one_ticket(wechat, service):
    words = "楼上漏水把我家天花板泡坏了"
    replies = await asyncio.gather(wechat.send("r-tap", words), wechat.send("r-tap", words))
    assert number_in(replies[0]) == number_in(replies[1])
    assert len(await tickets(service, "r-tap")) == 1


# ---- 9. signatures, guessing and ids -------------------------------------------------------------------

async def test_a_signed_query_is_accepted_again_only_with_its_own_body(wechat, client, service):
    xml = wechat.xml("r-sig", "text", Content="楼下垃圾没人收")
    query, body = sign_push(TOKEN, xml, appid=APPID, timestamp=int(wechat.clock()), nonce="fixed-nonce")
    first = await client.post("/wechat", params=query, data=body.encode())
    assert first.status == 200
    retry = await client.post("/wechat", params=query, data=body.encode())  # WeChat's retry: the same body
    assert retry.status == 200 and reply_text(await retry.text()) == reply_text(await first.text())
    forged = wechat.xml("r-victim", "text", Content="我要投诉")
    replayed = await client.post("/wechat", params=query, data=forged.encode())
    assert replayed.status == 403
    assert await tickets(service, "r-victim") == []


async def test_a_push_to_another_account_is_refused(settings, clock):
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import create_app
    from tests.conftest import WeChat

    app = create_app(replace(settings, wechat_original_id="gh_ours"), clock=clock, migrate=True, background=False)
    async with TestClient(TestServer(app)) as c:
        w = WeChat(c, clock)
        assert (await w.post(w.xml("r1", "text", Content="你好"))).status == 403  # ToUserName gh_linli
        resp = await w.post(w.xml("r1", "text", Content="你好").replace("gh_linli", "gh_ours"))
        assert resp.status == 200


async def test_an_overlong_sender_is_refused_not_cut(wechat, service):
    resp = await wechat.post(wechat.xml("o" * 65, "text", Content="楼下垃圾没人收"))
    assert resp.status == 400
    assert await tickets(service) == []


async def test_guessing_household_codes_is_locked_out_and_the_admins_told(wechat, service, community):
    for i in range(accounts.PERSON_FAILURES):
        reply = await wechat.send("r-guess", f"绑定 ZZ{i}9QQQQ")
    assert "太多次" in reply
    assert "太多次" in await wechat.send("r-guess", "H1XXXXXX")  # even a right one is not tried now
    assert [n for n in await outbox(service, ADMIN) if "安全提醒" in n]
    assert "请回复您的住址" in await wechat.send("r-other", "绑定")  # somebody else is not locked out


async def test_many_senders_guessing_pause_codes_for_everyone(wechat, service, community, monkeypatch):
    monkeypatch.setattr(accounts, "SERVICE_FAILURES", 6)
    for i in range(6):
        await wechat.send(f"r-bot-{i}", f"K{i}7Q2M9X")
    assert "暂时停用" in await wechat.send("r-honest", "AB12CD34")
    assert len([n for n in await outbox(service, ADMIN) if "猜码" in n]) == 1


async def test_an_invite_code_cannot_be_guessed_at_the_rate_limit_either(wechat, service, community):
    for i in range(accounts.PERSON_FAILURES + 1):
        reply = await wechat.send("r-inv", f"邀请码 ABCD{i}EFG")
    assert "太多次" in reply


# ---- 10. a dialogue never swallows a command ---------------------------------------------------------

async def test_commands_inside_the_binding_dialogue_are_answered_and_binding_goes_on(wechat, service, community):
    number = number_in(await wechat.send(STRANGER, "小区门口的垃圾没人清理"))
    assert "住址" in await wechat.send(STRANGER, "绑定")
    assert "垃圾" in await wechat.send(STRANGER, f"查询 {number}")
    assert "您的身份" in await wechat.send(STRANGER, "我的身份")
    assert "您是业主吗" in await wechat.send(STRANGER, "3栋2单元501")  # the dialogue is still there
    assert "您最近反映的事" in await wechat.send(STRANGER, "我的诉求")  # a command with a question of its own


# ---- one person at a time ---------------------------------------------------------------------------

async def test_one_persons_pushes_take_turns_in_arrival_order():
    from bot.delivery import OneAtATime

    turns, order = OneAtATime(), []

    async def push(n: int, hold_s: float) -> None:
        async with turns("p"):
            order.append(("in", n))
            await asyncio.sleep(hold_s)
            order.append(("out", n))

    tasks = [asyncio.create_task(push(n, 0.01)) for n in range(4)]
    await asyncio.sleep(0)
    tasks[2].cancel()  # a push that gives up waiting is skipped, the others keep their order
    await asyncio.gather(*tasks, return_exceptions=True)
    assert order == [("in", 0), ("out", 0), ("in", 1), ("out", 1), ("in", 3), ("out", 3)]
    assert len(turns) == 0  # nobody left holding a turn


async def test_a_cancelled_push_that_was_just_handed_the_turn_passes_it_on():
    from bot.delivery import OneAtATime

    turns, entered = OneAtATime(), []
    first = turns("p")
    await first.__aenter__()

    async def wait(n):
        async with turns("p"):
            entered.append(n)

    second, third = asyncio.create_task(wait(2)), asyncio.create_task(wait(3))
    await asyncio.sleep(0)
    await first.__aexit__(None, None, None)  # hands the turn to the second …
    second.cancel()  # … which is cancelled before it runs
    await asyncio.gather(second, third, return_exceptions=True)
    assert entered == [3] and len(turns) == 0


# ---- rewording finds the open ticket (issue 14) ------------------------------------------------------

async def test_rewording_finds_the_open_ticket_and_asks(wechat, service):
    first = number_in(await wechat.send("r-re", "小区门口的路灯不亮了"))
    asked = await wechat.send("r-re", "门口路灯还是不亮，都好几天了")
    assert first in asked and "是同一件事吗" in asked
    again = await wechat.send("r-re", "1")
    assert first in again and "催了一次" in again
    assert len(await tickets(service, "r-re")) == 1
    async with service.ctx.sessions() as s:
        reminders = (await s.execute(select(func.count()).select_from(TicketEvent).where(
            TicketEvent.action == "repeated"))).scalar_one()
    assert reminders == 1
    await wechat.send("r-re", "门口路灯到现在都不亮")
    new = await wechat.send("r-re", "2")  # another lamp, another matter
    assert "编号：" in new and first not in new
    assert len(await tickets(service, "r-re")) == 2


async def test_in_the_attach_window_only_supplementary_words_attach(wechat, service):
    number = number_in(await wechat.send("r-att", "小区门口的路灯不亮了"))
    assert number in await wechat.send("r-att", "就在5号楼旁边")  # supplementary: attached
    assert number in await wechat.push("r-att", "voice", MediaId="v1", Format="amr", Recognition="好几天了")
    other = await wechat.push("r-att", "voice", MediaId="v2", Format="amr", Recognition="楼上装修天天打电钻太吵了")
    assert "编号：" in other and number not in other  # a new matter of another kind: its own ticket
    assert len(await tickets(service, "r-att")) == 2
    async with service.ctx.sessions() as s:
        events = (await s.execute(select(TicketEvent.action, TicketEvent.note).where(
            TicketEvent.ticket_id == (await tickets(service, "r-att"))[0].id))).all()
    assert ("attached", "就在5号楼旁边") in events


async def test_query_shows_the_whole_story_page_by_page(wechat, service, community):
    number = number_in(await wechat.send(RESIDENT, "楼道的灯坏了好几天了，晚上看不见"))
    await wechat.send(WORKER, f"签收 {number}")
    for i in range(8):
        await wechat.send(WORKER, f"回复 {number} 第{i}次联系")
    first = await wechat.send(RESIDENT, f"查询 {number}")
    assert "提交" in first and "第1–8条，共11条" in first and "下一页" in first
    rest = await wechat.send(RESIDENT, "下一页")
    assert "第9–11条" in rest and "第7次联系" in rest and "下一页”看" not in rest
