"""Binding through the webhook: residents to a household (code or address + grid worker), staff by invite code."""
from __future__ import annotations

from handlers.routing import open_question

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from storage.accounts import create_invite, short_id
from storage.community import import_households
from tests.conftest import resident_place
from storage.models import Grid, InviteCode, Outbox, Resident, Staff, Ticket

HOUSEHOLDS = Path(__file__).with_name("data") / "demo_households.csv"


@pytest.fixture
async def community(service):
    report = await import_households(service.ctx.sessions, HOUSEHOLDS)
    assert report.ok, report.errors
    return service


async def invite(service, role: str, grid: str | None = None, *, hours: float = 72, head: bool = False) -> str:
    async with service.ctx.sessions() as s, s.begin():
        grid_id = (await s.execute(select(Grid.id).where(Grid.code == grid))).scalar_one() if grid else None
        code = await create_invite(s, role=role, now=service.ctx.now(), hours=hours, grid_id=grid_id, is_head=head)
        return code.code


async def worker(wechat, service, openid: str, grid: str) -> None:
    reply = await wechat.send(openid, await invite(service, "grid_worker", grid))
    assert f"您已绑定为 {grid} 的网格员" in reply


async def resident(service, openid: str) -> Resident | None:
    async with service.ctx.sessions() as s:
        return await s.get(Resident, openid)


async def notices(service, openid: str) -> list[str]:
    async with service.ctx.sessions() as s:
        return list((await s.execute(select(Outbox.text).where(Outbox.openid == openid).order_by(Outbox.id))).scalars())


async def place_of(service, openid: str):
    async with service.ctx.sessions() as s:
        return await resident_place(s, openid)


# ---- residents ----------------------------------------------------------------------------------

async def test_household_code_binds_at_once(wechat, community):
    assert "请回复您的住址，例如：3栋2单元501" in await wechat.send("r1", "绑定")
    reply = await wechat.send("r1", "t3x501km")  # letter case does not matter
    assert "3栋2单元501" in reply and "1 是" in reply and "2 不是" in reply
    reply = await wechat.send("r1", "1")
    assert "绑定成功" in reply and "业主" in reply
    row = await resident(community, "r1")
    assert (row.status, row.is_owner) == ("bound", True) and row.bound_at is not None
    assert (await place_of(community, "r1"))[1] == row.household_id
    assert await open_question(community.ctx, "r1") is None


async def test_several_residents_share_a_household(wechat, community):
    for openid, owner in (("r1", "1"), ("r2", "2")):
        await wechat.send(openid, "绑定房屋")
        await wechat.send(openid, "T3X501KM")
        assert "绑定成功" in await wechat.send(openid, owner)
    a, b = await resident(community, "r1"), await resident(community, "r2")
    assert a.household_id == b.household_id and (a.is_owner, b.is_owner) == (True, False)


async def test_typed_address_waits_for_the_grid_worker_who_confirms(wechat, community):
    await worker(wechat, community, "w2", "g2")
    await worker(wechat, community, "w1", "g1")  # another grid: neither told nor allowed to confirm
    await wechat.send("r1", "绑定")
    assert "您是业主吗" in await wechat.send("r1", "3号楼2单元501室")
    reply = await wechat.send("r1", "2")
    assert "等网格员" in reply and "3栋2单元501" in reply
    row = await resident(community, "r1")
    assert (row.status, row.is_owner) == ("pending", False) and await place_of(community, "r1") is None

    sid = short_id("r1")
    [notice] = await notices(community, "w2")
    assert "3栋2单元501" in notice and f"确认 {sid}" in notice and f"拒绝 {sid}" in notice
    assert await notices(community, "w1") == []
    assert sid in await wechat.send("w2", "待确认")
    assert "没有找到待确认" in await wechat.send("w1", f"确认 {sid}")

    reply = await wechat.send("w2", f"确认 {sid.lower()}")
    assert "已确认" in reply and "3栋2单元501" in reply
    assert (await resident(community, "r1")).status == "bound"
    assert await place_of(community, "r1") is not None
    assert "已确认" in (await notices(community, "r1"))[-1]
    assert "没有等您确认" in await wechat.send("w2", "待确认")


async def test_grid_worker_can_refuse_a_binding(wechat, community):
    await worker(wechat, community, "w2", "g2")
    await wechat.send("r1", "绑定 4栋102")  # the address in one message
    await wechat.send("r1", "1")
    assert "已拒绝" in await wechat.send("w2", f"拒绝 {short_id('r1')}")
    row = await resident(community, "r1")
    assert (row.status, row.household_id) == ("unbound", None)
    assert "没能确认" in (await notices(community, "r1"))[-1]


async def test_without_a_grid_worker_the_duty_desk_is_asked(wechat, community):
    assert "值班人员" in await wechat.send("d1", await invite(community, "duty_desk"))
    await wechat.send("r1", "绑定")
    await wechat.send("r1", "4-201")
    await wechat.send("r1", "1")
    assert f"确认 {short_id('r1')}" in (await notices(community, "d1"))[0]
    assert "已确认" in await wechat.send("d1", f"确认 {short_id('r1')}")


async def test_nonsense_mid_dialogue_is_asked_again_and_0_leaves(wechat, community):
    await wechat.send("r1", "绑定")
    reply = await wechat.send("r1", "不知道")
    assert "例如：3栋2单元501" in reply and "回复 0 退出" in reply
    reply = await wechat.send("r1", "9栋9单元909")
    assert "没有找到" in reply and "回复 0 退出" in reply
    assert "已退出绑定" in await wechat.send("r1", "0")
    assert await open_question(community.ctx, "r1") is None
    assert await resident(community, "r1") is None


async def test_the_owner_question_is_asked_again_with_numbers(wechat, community):
    await wechat.send("r1", "绑定")
    await wechat.send("r1", "T4Y101KM")
    reply = await wechat.send("r1", "嗯")
    assert "1 是业主" in reply and "2 不是" in reply and "0 退出" in reply
    assert "绑定成功" in await wechat.send("r1", "是")


async def test_three_wrong_answers_end_the_dialogue_kindly(wechat, community):
    await wechat.send("r1", "绑定")
    await wechat.send("r1", "啊")
    await wechat.send("r1", "哦")
    assert "户号" in await wechat.send("r1", "嗯")
    assert await open_question(community.ctx, "r1") is None


async def test_an_ambiguous_address_offers_numbered_choices(wechat, community):
    await wechat.send("r1", "绑定")
    reply = await wechat.send("r1", "1栋101")
    assert "1 test 1栋1单元101" in reply and "2 test 1栋2单元101" in reply
    assert "1栋2单元101" in await wechat.send("r1", "2")
    await wechat.send("r1", "1")
    assert (await resident(community, "r1")).status == "pending"


async def test_a_complaint_mid_dialogue_becomes_a_ticket(wechat, community):
    await wechat.send("r1", "绑定")
    reply = await wechat.send("r1", "楼下的垃圾桶满了好几天都没有人来清理")
    assert "编号" in reply
    async with community.ctx.sessions() as s:
        assert (await s.execute(select(func.count()).select_from(Ticket))).scalar_one() == 1


async def test_menu_click_starts_binding(wechat, community):
    reply = await wechat.push("r1", "event", Event="CLICK", EventKey="BIND")
    assert "请回复您的住址" in reply
    assert "您是业主吗" in await wechat.send("r1", "T1A101KM")


async def test_who_am_i_shows_home_and_roles(wechat, community):
    assert "还没有绑定" in await wechat.send("w1", "我的身份")
    await worker(wechat, community, "w1", "g1")
    await wechat.send("w1", await invite(community, "residents_committee", head=True))
    await wechat.send("w1", "绑定 T1A201KM")
    await wechat.send("w1", "2")
    reply = await wechat.send("w1", "我是谁")
    assert "1栋1单元201（租户或家属）" in reply and "g1 的网格员" in reply and "居委会负责人" in reply


# ---- staff --------------------------------------------------------------------------------------

async def test_an_invite_code_works_once(wechat, community):
    code = await invite(community, "property")
    assert "您已绑定为 物业成员" in await wechat.send("s1", f"邀请码：{code}")
    assert "已经用过" in await wechat.send("s2", code)
    async with community.ctx.sessions() as s:
        staff = (await s.execute(select(Staff))).scalars().all()
        used = await s.get(InviteCode, code)
    assert [(x.openid, x.role) for x in staff] == [("s1", "property")] and used.used_by == "s1"


async def test_an_invite_code_mid_binding_still_binds_the_role(wechat, community):
    await wechat.send("s1", "绑定")
    assert "居委会成员" in await wechat.send("s1", await invite(community, "residents_committee"))
    assert await open_question(community.ctx, "s1") is None


async def test_a_retried_push_gets_the_same_answer(wechat, community):
    code = await invite(community, "mediation")
    first = await wechat.send("s1", code, msg_id=4242)
    assert "调解委员会成员" in first
    assert await wechat.send("s1", code, msg_id=4242) == first


async def test_two_people_sending_one_code_at_once_only_one_wins(wechat, community):
    code = await invite(community, "grid_worker", "g1")
    replies = await asyncio.gather(wechat.send("s1", code), wechat.send("s2", code))
    assert sum("您已绑定为" in r for r in replies) == 1 and sum("已经用过" in r for r in replies) == 1
    async with community.ctx.sessions() as s:
        assert (await s.execute(select(func.count()).select_from(Staff))).scalar_one() == 1


async def test_an_expired_code_is_refused(wechat, community):
    code = await invite(community, "admin", hours=72)
    later = community.ctx.now() + timedelta(hours=73)
    community.ctx.now = lambda: later
    assert "已过期" in await wechat.send("s1", code)
    async with community.ctx.sessions() as s:
        assert (await s.execute(select(func.count()).select_from(Staff))).scalar_one() == 0


async def test_unknown_codes(wechat, community):
    assert "没有找到这个邀请码" in await wechat.send("s1", "邀请码 K7Q2M9XA")
    assert "没有找到这个邀请码" in await wechat.send("s1", "K7Q2M9XA")  # shaped like one: answered as one
    reply = await wechat.send("s1", "ABCDEFGH")  # letters only: not a code, goes on to the classifier
    assert "邀请码" not in reply
    reply = await wechat.send("s1", "T2A102KM")  # a household code sent on its own starts binding
    assert "您是业主吗" in reply
    async with community.ctx.sessions() as s:
        assert (await s.execute(select(func.count()).select_from(Staff))).scalar_one() == 0


async def test_residents_cannot_confirm_bindings(wechat, community):
    await wechat.send("r1", "绑定 3-2-502")
    await wechat.send("r1", "1")
    reply = await wechat.send("r2", f"确认 {short_id('r1')}")
    assert "已确认" not in reply
    assert (await resident(community, "r1")).status == "pending"


async def test_many_claims_of_one_code_bind_exactly_one(community):
    from storage.accounts import claim_invite

    code = await invite(community, "owners_committee")
    now = community.ctx.now()
    claims = await asyncio.gather(*(claim_invite(community.ctx.sessions, code, f"s{i}", now) for i in range(8)))
    assert sorted(c.outcome for c in claims) == ["bound"] + ["used"] * 7
    async with community.ctx.sessions() as s:
        assert (await s.execute(select(func.count()).select_from(Staff))).scalar_one() == 1
