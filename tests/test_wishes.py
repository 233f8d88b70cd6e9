"""Micro-wish use cases on the demo community, on SQLite and PostgreSQL: the lifecycle, who may do what,
what the wall shows and hides, the limits, the hours, the notices."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from handlers import wishes
from handlers.wish_rules import Limits
from storage import wishes as repo
from storage.models import PartyMember, Resident, Wish, WishClaimer, WishEvent
from tests.wish_support import CHEN, LI, LIU, NOW, QIAN, STRANGER, SUN, ZHANG, ZHAO, World


@pytest.fixture
async def world(engine):
    w = World(engine)
    await w.setup()
    yield w
    await w.close()


async def events(world, number) -> list[str]:
    async with world.sessions() as session:
        wish = await repo.wish_by_number(session, number)
        return [e.action for e in await repo.timeline(session, wish.id)]


async def test_a_wish_walks_from_the_resident_to_a_party_member_and_back(world):
    submitted = await world.submit(ZHANG, "家里厨房灯泡坏了，想请人帮忙换一下")
    number = submitted.number
    assert submitted.code == "submitted" and f"编号：{number}" in submitted.reply
    assert any(number in n and "审核" in n for n in await world.notices(CHEN))  # the reviewer is told

    pending = await world.run(wishes.pending, CHEN)
    assert number in pending.reply and "3栋2单元501" in pending.reply  # reviewers check the household
    reviewed = await world.run(wishes.review, CHEN, number, NOW, approve=True, kind="service",
                               public_text="3栋一位老人想请人帮忙换厨房灯泡")
    assert reviewed.code == "approved" and f"编号：{number}" in reviewed.reply
    assert any("审核通过" in n for n in await world.notices(ZHANG))

    wall = await world.run(wishes.wall, LIU)
    assert number in wall.reply and "便民服务" in wall.reply and "3栋" in wall.reply
    assert "3栋一位老人想请人帮忙换厨房灯泡" in wall.reply
    for secret in ("501", "2单元", "张阿姨", "家里厨房灯泡坏了", ZHANG):  # never the room, name or own words
        assert secret not in wall.reply

    claimed = await world.run(wishes.claim, LIU, number, NOW)
    assert claimed.code == "claimed" and f"编号：{number}" in claimed.reply
    told = [n for n in await world.notices(ZHANG) if "认领" in n]
    assert told and "在职党员刘**" in told[-1] and LIU not in told[-1]

    await world.run(wishes.relay, LIU, number, "明天上午10点来换，方便吗？", NOW)
    await world.run(wishes.relay, ZHANG, number, "方便，我在家", NOW)
    assert "明天上午10点来换" in (await world.notices(ZHANG))[-1]
    assert "方便，我在家" in (await world.notices(LIU))[-1]
    assert not any(re.search(r"1\d{10}", n) for n in await world.notices(LIU))  # no phone before consent

    async with world.sessions() as session, session.begin():
        (await session.get(Resident, ZHANG)).phone = "13800001234"
    assert (await world.run(wishes.share_phone, ZHANG, NOW)).code == "shared"
    assert "13800001234" in (await world.notices(LIU))[-1]

    asked = await world.run(wishes.fulfil, LIU, number, "已经换好了新灯泡", NOW)
    assert asked.code == "need_hours" and asked.unit is None and asked.detail["story"] == "已经换好了新灯泡"
    done = await world.run(wishes.fulfil, LIU, number, "已经换好了新灯泡 用时1.5小时", NOW)
    assert done.code == "fulfilled" and "1小时30分钟" in done.reply
    question = (await world.notices(ZHANG))[-1]
    assert "1 已完成" in question and "2 没有完成" in question and "已经换好了新灯泡" in question
    assert (await world.detail(number))["hours"] == 0  # not confirmed yet

    assert (await world.run(wishes.confirm, LI, number, NOW)).code == "not_found"  # only the wish's own resident
    assert (await world.run(wishes.confirm, LIU, number, NOW)).code == "not_allowed"
    confirmed = await world.run(wishes.confirm, ZHANG, number, NOW)
    assert confirmed.code == "confirmed" and f"编号：{number}" in confirmed.reply
    assert "1小时30分钟" in (await world.notices(LIU))[-1]

    detail = await world.detail(number)
    assert detail["status"] == "closed" and detail["claimed_by"] == ["刘党员"] and detail["hours"] == 1.5
    assert detail["story"] == "已经换好了新灯泡"
    assert await events(world, number) == ["submitted", "approved", "edited", "claimed", "message", "message",
                                           "phone_shared", "fulfilled", "confirmed"]
    service = await world.run(wishes.my_service, LIU)
    assert number in service.reply and service.detail["minutes"] == 90


async def test_an_unbound_resident_is_asked_to_bind_first(world):
    result = await world.submit(STRANGER)
    assert result.code == "unbound" and "绑定" in result.reply and result.unit is None
    assert (await world.submit(ZHANG, "   ")).code == "empty"


async def test_at_most_three_open_wishes_and_the_refusal_says_why(world):
    numbers = [(await world.submit(ZHANG, f"心愿{i}")).number for i in range(3)]
    refused = await world.submit(ZHANG, "第四个")
    assert refused.code == "limit" and refused.unit is None
    assert "最多同时3个" in refused.reply and all(n in refused.reply for n in numbers)
    assert (await world.submit(LI, "李大爷的心愿")).code == "submitted"  # per resident
    assert (await world.run(wishes.withdraw, ZHANG, numbers[0], NOW)).code == "withdrawn"
    assert (await world.submit(ZHANG, "第四个")).code == "submitted"  # a withdrawn wish is no longer open


async def test_the_limit_is_configurable(engine):
    w = World(engine, Limits(max_open=1))
    await w.setup()
    try:
        assert (await w.submit(ZHANG)).code == "submitted"
        assert "最多同时1个" in (await w.submit(ZHANG)).reply
    finally:
        await w.close()


async def test_closed_and_rejected_wishes_do_not_count_towards_the_limit(world):
    first = await world.claimed()
    await world.run(wishes.fulfil, LIU, first, "好了 用时1小时", NOW)
    await world.run(wishes.confirm, ZHANG, first, NOW)
    second = (await world.submit()).number
    await world.run(wishes.review, CHEN, second, NOW, approve=False, reason="已由民政部门帮扶")
    for _ in range(3):
        assert (await world.submit()).code == "submitted"


async def test_rejection_needs_a_reason_the_resident_reads(world):
    number = (await world.submit()).number
    assert (await world.run(wishes.review, CHEN, number, NOW, approve=False)).code == "need_reason"
    result = await world.run(wishes.review, CHEN, number, NOW, approve=False, reason="已由民政部门帮扶")
    assert result.code == "rejected"
    assert "已由民政部门帮扶" in (await world.notices(ZHANG))[-1]
    assert (await world.detail(number))["status"] == "rejected"
    again = await world.run(wishes.review, CHEN, number, NOW, approve=True)
    assert again.code == "not_now" and again.unit is None


async def test_only_reviewers_review_and_edit(world):
    number = (await world.submit()).number
    for who in (ZHANG, LI, LIU, "demo-worker-wang", STRANGER):
        assert (await world.run(wishes.review, who, number, NOW, approve=True)).code == "not_reviewer"
        assert (await world.run(wishes.pending, who)).code == "not_reviewer"
        assert (await world.run(wishes.edit, who, number, NOW, public_text="x")).code == "not_reviewer"
    assert (await world.run(wishes.review, CHEN, number, NOW, approve=True, kind="gold")).code == "bad_kind"
    assert (await world.run(wishes.review, wishes.CLI_ACTOR, number, NOW, approve=True)).code == "approved"
    assert (await world.wish(number)).kind == "service"  # the default kind
    edited = await world.run(wishes.edit, CHEN, number, NOW, public_text="帮老人换灯泡", kind="public")
    assert edited.code == "edited"
    wish = await world.wish(number)
    assert (wish.public_text, wish.kind, wish.text) == ("帮老人换灯泡", "public", "想请人帮忙换一下厨房的灯泡")


async def test_who_may_see_the_wall_and_claim(world):
    number = await world.approved()
    for who, code in ((ZHANG, "not_member"), (CHEN, "not_member"), (STRANGER, "not_member")):
        assert (await world.run(wishes.wall, who)).code == code
        assert (await world.run(wishes.claim, who, number, NOW)).code == code  # a resident cannot claim
    # a Party member of another community neither sees this wall nor claims from it
    elsewhere = await world.run(wishes.wall, QIAN)
    assert elsewhere.code == "wall" and number not in elsewhere.reply and "别处社区" in elsewhere.reply
    assert (await world.run(wishes.claim, QIAN, number, NOW)).code == "not_found"
    assert (await world.run(wishes.join, QIAN, number, NOW)).code == "not_found"
    # a Party member who has not registered (报到) yet is asked to
    async with world.sessions() as session, session.begin():
        await session.delete(await session.get(PartyMember, SUN))
    assert (await world.run(wishes.wall, SUN)).code == "not_registered"
    assert (await world.run(wishes.claim, SUN, number, NOW)).code == "not_registered"
    assert (await world.run(wishes.claim, LIU, number, NOW)).code == "claimed"
    assert number not in (await world.run(wishes.wall, ZHAO)).reply  # claimed: off the wall
    taken = await world.run(wishes.claim, ZHAO, number, NOW)
    assert taken.code == "taken" and "已经被其他党员认领" in taken.reply


async def test_a_submitted_wish_is_not_on_the_wall_nor_claimable(world):
    number = (await world.submit()).number
    assert number not in (await world.run(wishes.wall, LIU)).reply
    assert (await world.run(wishes.claim, LIU, number, NOW)).code == "not_now"


async def test_a_party_member_cannot_claim_their_own_wish(world):
    async with world.sessions() as session, session.begin():  # 刘党员 lives in the community too
        li = await session.get(Resident, LI)
        session.add(Resident(openid=LIU, household_id=li.household_id, status="bound", created_at=NOW))
    number = await world.approved(LIU, "想请人帮忙修一下自行车")
    assert (await world.run(wishes.claim, LIU, number, NOW)).code == "own"
    assert (await world.run(wishes.claim, ZHAO, number, NOW)).code == "claimed"


async def test_withdraw_only_own_and_only_before_a_claim(world):
    number = await world.approved()
    assert (await world.run(wishes.withdraw, LI, number, NOW)).code == "not_found"
    assert (await world.run(wishes.withdraw, LIU, number, NOW)).code == "not_allowed"
    assert (await world.run(wishes.claim, LIU, number, NOW)).code == "claimed"
    refused = await world.run(wishes.withdraw, ZHANG, number, NOW)
    assert refused.code == "not_now" and (await world.wish(number)).status == "claimed"


async def test_a_withdrawal_racing_a_claim_lets_exactly_one_win(world):
    number = await world.approved()
    withdrawal = await world.decide(wishes.withdraw, ZHANG, number, NOW)
    assert (await world.run(wishes.claim, LIU, number, NOW)).code == "claimed"
    late = await wishes.commit(world.writer, withdrawal)
    assert late.code == "conflict" and "刚刚被党员认领" in late.reply
    assert (await world.wish(number)).status == "claimed"


async def test_my_wishes_lists_mine_only(world):
    mine = (await world.submit(ZHANG, "张阿姨的心愿")).number
    other = (await world.submit(LI, "李大爷的心愿")).number
    listed = (await world.run(wishes.my_wishes, ZHANG)).reply
    assert mine in listed and other not in listed and "等待社区审核" in listed


async def test_group_claim_shares_the_hours_per_member(world):
    number = await world.claimed(LIU, group=True)
    assert (await world.run(wishes.join, ZHAO, number, NOW)).code == "joined"
    assert any("加入" in n for n in await world.notices(LIU))
    assert (await world.run(wishes.join, ZHAO, number, NOW)).code == "already_in"
    assert (await world.run(wishes.join, SUN, number, NOW)).code == "joined"
    # any member reports it, with the group's total time: 2 hours for 3 members is 40 minutes each
    assert (await world.run(wishes.fulfil, ZHAO, number, "陪老人去医院复查 用时2小时", NOW)).code == "fulfilled"
    assert (await world.run(wishes.confirm, ZHANG, number, NOW)).code == "confirmed"
    detail = await world.detail(number)
    assert detail["claimed_by"] == ["刘党员", "赵党员", "孙党员"] and detail["hours"] == 2.0
    async with world.sessions() as session:
        shares = dict((await session.execute(select(WishClaimer.openid, WishClaimer.minutes))).all())
    assert shares == {LIU: 40, ZHAO: 40, SUN: 40}


async def test_join_needs_a_group_claim_with_room(engine):
    world = World(engine, Limits(max_group=2))
    await world.setup()
    try:
        alone = await world.claimed(LIU)
        assert (await world.run(wishes.join, ZHAO, alone, NOW, world.limits)).code == "not_group"
        on_wall = await world.approved(LI, "李大爷的心愿")
        assert (await world.run(wishes.join, ZHAO, on_wall, NOW, world.limits)).code == "not_claimed"
        group = await world.claimed(LIU, group=True, openid=LI, text="另一个心愿")
        assert (await world.run(wishes.join, ZHAO, group, NOW, world.limits)).code == "joined"
        full = await world.run(wishes.join, SUN, group, NOW, world.limits)
        assert full.code == "full" and "2人" in full.reply
        assert (await world.wish(group)).claimer_count == 2
    finally:
        await world.close()


async def test_the_wall_offers_group_claims_to_join(world):
    number = await world.claimed(LIU, group=True)
    wall = (await world.run(wishes.wall, ZHAO)).reply
    assert number in wall and "加入" in wall and "已有1人" in wall


async def test_a_dispute_goes_back_to_the_claimer_and_the_committee_is_told(world):
    number = await world.claimed()
    await world.run(wishes.fulfil, LIU, number, "修好了 用时1小时", NOW)
    assert (await world.run(wishes.dispute, LI, number, "", NOW)).code == "not_found"
    result = await world.run(wishes.dispute, ZHANG, number, "灯还是不亮", NOW)
    assert result.code == "disputed" and f"编号：{number}" in result.reply
    assert "灯还是不亮" in (await world.notices(LIU))[-1]
    assert any("没有完成" in n and number in n for n in await world.notices(CHEN))
    wish = await world.wish(number)
    assert (wish.status, wish.minutes, wish.fulfilled_at) == ("claimed", None, None)
    async with world.sessions() as session:
        assert (await session.execute(select(WishClaimer.minutes))).scalars().all() == [None]
    # the claimer reports again; only the new time counts
    await world.run(wishes.fulfil, LIU, number, "换了开关 用时30分钟", NOW)
    await world.run(wishes.confirm, ZHANG, number, NOW)
    assert (await world.detail(number))["hours"] == 0.5


async def test_only_claimers_fulfil_and_message(world):
    number = await world.claimed(LIU)
    for who in (ZHAO, ZHANG, CHEN):
        assert (await world.run(wishes.fulfil, who, number, "用时1小时", NOW)).code in ("not_allowed", "not_found")
    assert (await world.run(wishes.relay, ZHAO, number, "你好", NOW)).code == "not_allowed"
    assert (await world.run(wishes.relay, LI, number, "你好", NOW)).code == "not_found"
    assert (await world.run(wishes.relay, LIU, number, " ", NOW)).code == "need_words"


async def test_phone_consent_asks_for_a_number_and_which_wish(world):
    assert (await world.run(wishes.share_phone, ZHANG, NOW)).code == "none"
    first = await world.claimed()
    assert (await world.run(wishes.share_phone, ZHANG, NOW)).code == "need_phone"  # no phone on file
    second = await world.claimed(ZHAO)
    which = await world.run(wishes.share_phone, ZHANG, NOW)
    assert which.code == "which" and first in which.reply and second in which.reply
    assert (await world.run(wishes.share_phone, ZHANG, NOW, ref=second, phone="139 0000 5678")).code == "shared"
    assert "13900005678" in (await world.notices(ZHAO))[-1]
    assert not any("13900005678" in n for n in await world.notices(LIU))
    assert (await world.run(wishes.share_phone, LI, NOW, ref=first, phone="13900005678")).code == "not_found"


async def test_photos_of_the_wish_and_of_the_proof(world):
    number = (await world.submit()).number
    assert (await world.run(wishes.attach_photo, ZHANG, number, NOW, media_id="m1")).code == "photo"
    assert (await world.run(wishes.attach_photo, LI, number, NOW, media_id="m2")).code == "not_found"
    await world.run(wishes.review, CHEN, number, NOW, approve=True)
    await world.run(wishes.claim, LIU, number, NOW)
    await world.run(wishes.fulfil, LIU, number, "换好了 用时1小时", NOW)
    assert (await world.run(wishes.attach_photo, LIU, number, NOW, url="http://x/proof.jpg")).code == "photo"
    assert [p["purpose"] for p in (await world.detail(number))["photos"]] == ["wish", "proof"]


async def test_numbers_share_the_tickets_sequence_and_refs_accept_the_bare_id(world):
    number = (await world.submit()).number
    wish = await world.wish(number)
    assert number == f"{wish.id}{number[-1]}" and wish.id >= 10000
    async with world.sessions() as session:
        assert (await repo.wish_by_ref(session, number)).id == wish.id
        assert (await repo.wish_by_ref(session, str(wish.id))).id == wish.id
        assert await repo.wish_by_ref(session, number[:-1] + str((int(number[-1]) + 1) % 10)) is None
        assert await repo.wish_by_ref(session, "abc") is None


async def test_register_updates_and_needs_the_role_and_a_unit(world):
    assert (await world.run(wishes.register, ZHANG, NOW, unit="x")).code == "not_member"
    assert (await world.run(wishes.register, LIU, NOW, unit=" ")).code == "need_unit"
    assert (await world.run(wishes.register, LIU, NOW, unit="区财政局", skills="电工")).code == "registered"
    assert (await world.run(wishes.register, LIU, NOW, unit="x", community="没有这个社区")).code == "which_community"
    async with world.sessions() as session:
        liu = await session.get(PartyMember, LIU)
        assert (liu.unit, liu.skills, liu.name) == ("区财政局", "电工", "刘党员")


def test_parse_registration():
    assert wishes.parse_registration("报到 单位：区税务局 特长：水电维修 时间：周末") == {
        "unit": "区税务局", "skills": "水电维修", "time_offered": "周末"}
    assert wishes.parse_registration("报到 市第一医院") == {"unit": "市第一医院"}
    assert wishes.parse_registration("报到 单位:区医院，社区：幸福里社区") == {"unit": "区医院", "community": "幸福里社区"}
    assert wishes.parse_registration("报到") == {}


def test_limits_from_env():
    assert wishes.limits_from_env({}) == Limits()
    assert wishes.limits_from_env({"LINLI_WISH_MAX_OPEN": "5", "LINLI_WISH_STALE_DAYS": "3.5"}) == Limits(
        max_open=5, stale_days=3.5)
    for bad in ("x", "0", "-1", "nan"):
        with pytest.raises(ValueError, match="LINLI_WISH_MAX_GROUP"):
            wishes.limits_from_env({"LINLI_WISH_MAX_GROUP": bad})


async def test_every_change_is_on_the_timeline_with_its_actor(world):
    number = await world.claimed()
    async with world.sessions() as session:
        wish = await repo.wish_by_number(session, number)
        rows = (await session.execute(select(WishEvent.actor, WishEvent.action).where(
            WishEvent.wish_id == wish.id).order_by(WishEvent.id))).all()
    assert [tuple(r) for r in rows] == [(ZHANG, "submitted"), (CHEN, "approved"), (LIU, "claimed")]


async def test_the_outcome_carries_the_unit_and_the_conflict_reply_for_the_chat(world):
    number = await world.approved()
    result = await world.decide(wishes.claim, LIU, number, NOW)
    outcome = result.outcome()
    assert outcome.reply == result.reply and outcome.unit is result.unit
    assert "已经被其他党员认领" in outcome.conflict_reply
    async with world.sessions() as session:  # nothing is written before the unit is committed
        assert (await session.execute(select(Wish.status).where(Wish.number == number))).scalar_one() == "approved"


async def test_a_lost_race_is_explained_in_chinese(world):
    number = await world.claimed()
    await world.run(wishes.fulfil, LIU, number, "好了 用时1小时", NOW)
    confirmation = await world.decide(wishes.confirm, ZHANG, number, NOW)
    assert (await world.run(wishes.dispute, ZHANG, number, "还没好", NOW)).code == "disputed"
    late = await wishes.commit(world.writer, confirmation)
    assert late.code == "conflict" and number in late.reply and re.fullmatch(r"[^a-zA-Z]+", late.reply)
