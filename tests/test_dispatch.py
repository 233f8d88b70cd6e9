"""Dispatch and follow-through through the webhook: routing, staff commands, the resident's rating."""
from __future__ import annotations

import asyncio
import re
from datetime import datetime

import pytest
from sqlalchemy import select

from handlers.report import monthly, render
from storage.models import (Building, Cluster, Community, Grid, Household, Outbox, Proposal, Resident, Staff, Ticket,
                            TicketEvent, TicketParty)

WORKER, WORKER2, HEAD, DUTY, PROPERTY, OWNERS, ADMIN = (
    "worker-1", "worker-2", "head-1", "duty-1", "property-1", "owners-1", "admin-1")
RESIDENT, NEIGHBOUR, STRANGER = "res-1", "res-2", "res-9"


@pytest.fixture
async def community(service):
    """Two grids, one bound household each (plus a neighbour), and one person per role."""
    now = datetime(2026, 11, 22)
    async with service.ctx.sessions() as s:
        # flushed level by level: the models declare no relationships for the ORM to order inserts by
        s.add(Community(id=1, code="xfl", name="幸福里"))
        await s.flush()
        s.add_all([Grid(id=1, community_id=1, code="1", name="1号网格"),
                   Grid(id=2, community_id=1, code="2", name="2号网格")])
        await s.flush()
        s.add_all([Building(id=1, grid_id=1, community_id=1, name="3栋"),
                   Building(id=2, grid_id=2, community_id=1, name="8栋")])
        await s.flush()
        s.add_all([Household(id=1, building_id=1, unit="2单元", room="501", floor_area=88.5, code="H1"),
                   Household(id=2, building_id=1, unit="1单元", room="302", floor_area=70, code="H2")])
        await s.flush()
        s.add_all([Resident(openid=RESIDENT, household_id=1, is_owner=True, name="张阿姨", phone="13812345678",
                            status="bound", created_at=now),
                   Resident(openid=NEIGHBOUR, household_id=2, status="bound", created_at=now)])
        s.add_all([Staff(openid=WORKER, role="grid_worker", grid_id=1, name="王芳", created_at=now),
                   Staff(openid=WORKER2, role="grid_worker", grid_id=2, name="赵强", created_at=now),
                   Staff(openid=HEAD, role="residents_committee", is_head=True, name="陈明", created_at=now),
                   Staff(openid=DUTY, role="duty_desk", name="值班", created_at=now),
                   Staff(openid=PROPERTY, role="property", name="物业李", created_at=now),
                   Staff(openid=OWNERS, role="owners_committee", name="业委会周", created_at=now),
                   Staff(openid=ADMIN, role="admin", name="管理员", created_at=now)])
        await s.commit()


async def outbox(service, openid: str | None = None) -> list[str]:
    async with service.ctx.sessions() as s:
        q = select(Outbox.openid, Outbox.text).order_by(Outbox.id)
        rows = (await s.execute(q)).all()
    return [text for who, text in rows if openid is None or who == openid]


async def ticket(service, number: str) -> Ticket:
    async with service.ctx.sessions() as s:
        return (await s.execute(select(Ticket).where(Ticket.number == number))).scalar_one()


def number_in(reply: str) -> str:
    return re.search(r"编号[：: ]*(\d{6,})", reply).group(1)


async def test_bound_resident_reaches_the_grid_worker_of_their_grid(wechat, service, community):
    reply = await wechat.send(RESIDENT, "楼下垃圾桶满了三天没人清理，很臭")
    number = number_in(reply)
    assert "网格员" in reply
    t = await ticket(service, number)
    assert (t.route, t.grid_id, t.household_id, t.status) == ("grid_worker", 1, 1, "dispatched")
    assert t.response_due > t.dispatched_at and t.resolve_due > t.response_due
    notices = await outbox(service, WORKER)
    assert len(notices) == 1 and number in notices[0] and "3栋2单元501" in notices[0] and f"签收 {number}" in notices[0]
    assert await outbox(service, WORKER2) == []  # the other grid's worker hears nothing


async def test_unbound_resident_goes_to_the_duty_desk(wechat, service, community):
    number = number_in(await wechat.send(STRANGER, "小区门口的垃圾没人清理"))
    assert (await ticket(service, number)).route == "duty_desk"
    assert number in (await outbox(service, DUTY))[0]
    assert await outbox(service, WORKER) == []


async def test_three_party_matters_reach_the_committees_too(wechat, service, community):
    number = number_in(await wechat.send(RESIDENT, "电梯又坏了，物业一直不来修"))
    t = await ticket(service, number)
    assert t.route == "property"
    async with service.ctx.sessions() as s:
        parties = dict((await s.execute(select(TicketParty.route, TicketParty.lead).where(
            TicketParty.ticket_id == t.id))).all())
    assert parties == {"property": True, "residents_committee": False, "owners_committee": False}
    assert "【新工单】" in (await outbox(service, PROPERTY))[0]
    assert "【协办】" in (await outbox(service, HEAD))[0] and "【协办】" in (await outbox(service, OWNERS))[0]


async def test_emergency_reaches_worker_head_and_duty_desk_at_once(wechat, service, community):
    reply = await wechat.send(RESIDENT, "3栋楼道里着火了，好多烟")
    assert "119" in reply
    number = number_in(reply)
    for who in (WORKER, HEAD, DUTY):
        assert any(number in n for n in await outbox(service, who)), who
    t = await ticket(service, number)
    assert (t.response_due - t.dispatched_at).total_seconds() <= 2 * 3600


async def test_the_whole_loop_accept_message_resolve_rate(wechat, service, community):
    number = number_in(await wechat.send(RESIDENT, "楼道的灯坏了一个星期了"))
    assert number in await wechat.send(WORKER, "待签收")
    assert "已签收" in await wechat.send(WORKER, f"签收 {number}")
    assert "签收" in (await outbox(service, RESIDENT))[-1]

    assert "已发出" in await wechat.send(WORKER, f"回复 {number} 明天上午九点来修，方便吗")
    assert "明天上午九点" in (await outbox(service, RESIDENT))[-1]
    assert "已发出" in await wechat.send(RESIDENT, f"回复 {number} 方便，我在家")
    assert "我在家" in (await outbox(service, WORKER))[-1]

    assert "已办结" in await wechat.send(WORKER, f"办结 {number} 已更换灯泡")
    assert number in await wechat.push(WORKER, "image", PicUrl="http://img/done.jpg", MediaId="proof")  # proof
    asked = (await outbox(service, RESIDENT))[-1]
    assert "已更换灯泡" in asked and "1 解决了" in asked
    assert "满意吗" in await wechat.send(RESIDENT, "1")
    assert "感谢" in await wechat.send(RESIDENT, "2")
    t = await ticket(service, number)
    assert (t.status, t.solved, t.rating, t.close_reason) == ("closed", True, 2, "rated")

    async with service.ctx.sessions() as s:
        actions = list((await s.execute(select(TicketEvent.action).where(TicketEvent.ticket_id == t.id)
                                        .order_by(TicketEvent.id))).scalars())
        table = await monthly(s, t.dispatched_at.strftime("%Y-%m"), datetime(2030, 1, 1))
    assert actions == ["created", "dispatched", "accepted", "message", "message", "resolved", "attached", "rated",
                       "rated"]
    overall = table["all"]["合计"]
    assert (overall.response_rate, overall.resolution_rate, overall.satisfaction_rate) == (1.0, 1.0, 1.0)
    assert "王芳" in table["worker"] and "100.0%" in render("2026-11", table)


async def test_not_solved_reopens_to_the_handler_and_tells_the_supervisor(wechat, service, community):
    number = number_in(await wechat.send(RESIDENT, "楼下路灯不亮"))
    await wechat.send(WORKER, f"签收 {number}")
    await wechat.send(WORKER, f"办结 {number} 已报修")
    await wechat.send(RESIDENT, "2")  # not solved
    assert "重新" in await wechat.send(RESIDENT, "3")
    t = await ticket(service, number)
    assert (t.status, t.solved, t.rating, t.reopen_count) == ("reopened", False, 3, 1)
    assert "【重新办理】" in (await outbox(service, WORKER))[-1]
    assert "【重新办理】" in (await outbox(service, HEAD))[-1]
    assert "已办结" in await wechat.send(WORKER, f"办结 {number} 已换新灯")  # a reopened ticket can be resolved again
    assert (await ticket(service, number)).rating is None  # a new round, a new rating


async def test_two_staff_accepting_at_once_exactly_one_wins(wechat, service, community):
    number = number_in(await wechat.send(RESIDENT, "单元门口有人乱扔垃圾"))
    replies = await asyncio.gather(wechat.send(WORKER, f"签收 {number}"), wechat.send(ADMIN, f"签收 {number}"))
    assert sorted("已签收" in r for r in replies) == [False, True]
    assert any("已被别人签收" in r for r in replies)
    t = await ticket(service, number)
    assert t.status == "accepted" and t.assignee_id is not None


async def test_staff_act_only_on_their_own_tickets(wechat, service, community):
    number = number_in(await wechat.send(RESIDENT, "绿化带里垃圾很多"))
    assert "不是您的工单" in await wechat.send(WORKER2, f"签收 {number}")  # another grid
    assert "不是您的工单" in await wechat.send(WORKER2, f"工单 {number}")
    assert "138****5678" in await wechat.send(WORKER, f"工单 {number}")  # own grid: details, phone masked
    assert "13812345678" not in await wechat.send(WORKER, f"工单 {number}")
    assert "只有社区工作人员" in await wechat.send(NEIGHBOUR, f"签收 {number}")
    assert "没有找到" in await wechat.send(NEIGHBOUR, f"回复 {number} 我也看到了")  # not their ticket
    await wechat.send(WORKER, f"签收 {number}")
    assert "不是您的工单" in await wechat.send(WORKER2, f"办结 {number} 好了")  # staff, but not theirs
    assert "只有社区工作人员" in await wechat.send(STRANGER, f"办结 {number} 好了")


async def test_reassign_needs_a_reason_and_notifies_the_new_body(wechat, service, community):
    number = number_in(await wechat.send(RESIDENT, "楼道里有垃圾堆着"))
    await wechat.send(WORKER, f"签收 {number}")
    assert "原因" in await wechat.send(WORKER, f"转派 {number} 物业")
    assert "物业" in await wechat.send(WORKER, f"转派 {number} 物业 属于物业保洁范围")
    t = await ticket(service, number)
    assert (t.route, t.status, t.assignee_id) == ("property", "dispatched", None)
    assert number in (await outbox(service, PROPERTY))[-1]
    assert "值班" in await wechat.send(PROPERTY, f"退回 {number} 不归物业管")
    assert (await ticket(service, number)).route == "duty_desk"
    assert number in (await outbox(service, DUTY))[-1]


async def test_repeat_complaint_gets_progress_not_a_new_ticket(wechat, service, community):
    first = number_in(await wechat.send(RESIDENT, "小区东门的路灯坏了好几天了"))
    again = await wechat.send(RESIDENT, "小区东门的路灯坏了好几天了，怎么还没修")
    assert first in again and "已经反映过" in again
    async with service.ctx.sessions() as s:
        assert len((await s.execute(select(Ticket))).all()) == 1


async def test_households_reporting_the_same_thing_form_a_hot_spot(wechat, service, community):
    service.ctx.hotspot_households = 2
    a = number_in(await wechat.send(RESIDENT, "3栋门口的路灯坏了"))
    b = number_in(await wechat.send(NEIGHBOUR, "晚上路灯不亮，走路很黑"))
    ta, tb = await ticket(service, a), await ticket(service, b)
    assert ta.cluster_id == tb.cluster_id == ta.id
    assert "2户反映" in (await outbox(service, WORKER))[-1]
    async with service.ctx.sessions() as s:
        cluster = await s.get(Cluster, ta.id)
        proposals = (await s.execute(select(Proposal))).scalars().all()
    assert cluster.households == 2 and cluster.proposed_at is not None
    assert len(proposals) == 1 and proposals[0].status == "candidate"
    assert any("议题" in n for n in await outbox(service, HEAD))


async def test_each_new_deadline_gets_its_own_reminder_and_escalation(wechat, service, community):
    from sqlalchemy import update

    number = number_in(await wechat.send(RESIDENT, "楼道里的灯一直不亮"))
    async with service.ctx.sessions() as s:  # the response deadline was reminded and escalated already
        await s.execute(update(Ticket).where(Ticket.number == number).values(reminded=True, escalation_level=1))
        await s.commit()
    await wechat.send(WORKER, f"签收 {number}")
    t = await ticket(service, number)
    assert (t.reminded, t.escalation_level) == (False, 0)  # the resolve deadline starts clean
    before = t.response_due
    await wechat.send(WORKER, f"转派 {number} 物业 属于物业维修")
    t = await ticket(service, number)
    assert t.response_due > before and t.dispatched_at > t.created_at  # the new body's own clock


async def test_a_burst_finding_the_staff_copy_stale_loads_it_once(service, community):
    """After a quiet spell longer than its ttl, every message of the next burst finds the in-memory copy of
    staff and homes stale: they wait for one load, instead of each running its own queries at once (which put
    hundreds of milliseconds on the first answers)."""
    from handlers.dispatch import Directory

    opened = []

    def sessions():
        opened.append(1)
        return service.ctx.sessions()

    t = [0.0]
    directory = Directory(sessions, ttl_s=15, clock=lambda: t[0])
    homes = await asyncio.gather(*(directory.home(RESIDENT) for _ in range(50)))
    assert len(opened) == 1 and {h.household_id for h in homes} == {1}
    t[0] = 100.0  # the quiet spell
    members = await asyncio.gather(*(directory.members(("grid_worker",), 1) for _ in range(50)))
    assert len(opened) == 2 and {tuple(m.openid for m in found) for found in members} == {(WORKER,)}
