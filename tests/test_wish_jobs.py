"""The wish jobs: the review's time limit, stale claims, unanswered fulfilments; each step once, also when two
processes run the job at once. And the hours report."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from handlers import wishes
from handlers.wish_rules import Limits
from storage import wishes as repo
from storage.db import create_engine
from tests.wish_support import CHEN, LI, LIU, NOW, QIAN, SUN, ZHANG, ZHAO, World

LIMITS = Limits(max_open=100)


@pytest.fixture
async def world(engine):
    w = World(engine, LIMITS)
    await w.setup()
    yield w
    await w.close()


@pytest.fixture
async def engine2(database_url):
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


def at(**delta) -> datetime:
    return NOW + timedelta(**delta)


async def test_jobs_take_the_schedulers_shape(world):
    jobs = wishes.jobs(world.engine, LIMITS, every_s=60)
    assert [(name, interval) for name, interval, _ in jobs] == [
        ("wish_review", 60), ("wish_claims", 300), ("wish_confirmations", 300)]
    assert [await job(NOW) for _, _, job in jobs] == [0, 0, 0]


async def test_review_is_reminded_then_escalated_once_each(world, engine2):
    number = (await world.submit()).number
    before = len(await world.notices(CHEN))
    assert await wishes.chase_reviews(world.engine, at(hours=50), LIMITS) == 0
    # 20 % of 72 h left: both processes run the job at once, one reminder goes out
    runs = await asyncio.gather(wishes.chase_reviews(world.engine, at(hours=58), LIMITS),
                                wishes.chase_reviews(engine2, at(hours=58), LIMITS))
    assert sorted(runs) == [0, 1]
    told = (await world.notices(CHEN))[before:]
    assert len(told) == 1 and "催办" in told[0] and number in told[0]
    assert await wishes.chase_reviews(world.engine, at(hours=60), LIMITS) == 0
    runs = await asyncio.gather(wishes.chase_reviews(world.engine, at(hours=73), LIMITS),
                                wishes.chase_reviews(engine2, at(hours=73), LIMITS))
    assert sorted(runs) == [0, 1]
    told = (await world.notices(CHEN))[before:]
    assert len(told) == 2 and "督办" in told[1]  # 陈主任 heads the residents' committee
    assert await wishes.chase_reviews(world.engine, at(hours=100), LIMITS) == 0
    # reviewed: nothing left to chase
    await world.run(wishes.review, CHEN, number, at(hours=101), approve=True)
    other = (await world.submit(LI)).number
    assert await wishes.chase_reviews(world.engine, at(hours=200), LIMITS) == 1  # only the new one, escalated
    assert other in (await world.notices(CHEN))[-1]


async def test_a_review_found_late_is_escalated_without_a_reminder_first(world):
    number = (await world.submit()).number
    assert await wishes.chase_reviews(world.engine, at(days=5), LIMITS) == 1
    assert "督办" in (await world.notices(CHEN))[-1] and number in (await world.notices(CHEN))[-1]
    assert await wishes.chase_reviews(world.engine, at(days=6), LIMITS) == 0


async def test_a_stale_claim_is_reminded_then_released_to_the_wall(world, engine2):
    number = await world.claimed(LIU)
    assert await wishes.chase_claims(world.engine, at(days=6), LIMITS) == 0
    runs = await asyncio.gather(wishes.chase_claims(world.engine, at(days=7), LIMITS),
                                wishes.chase_claims(engine2, at(days=7), LIMITS))
    assert sorted(runs) == [0, 1]
    assert "好几天没有进展" in (await world.notices(LIU))[-1]
    assert await wishes.chase_claims(world.engine, at(days=8), LIMITS) == 0
    # a message to the resident is progress: the clock starts again
    await world.run(wishes.relay, LIU, number, "这周末来", at(days=8))
    assert await wishes.chase_claims(world.engine, at(days=14), LIMITS) == 0
    assert await wishes.chase_claims(world.engine, at(days=15), LIMITS) == 1  # reminded again
    committee_before = len(await world.notices(CHEN))
    runs = await asyncio.gather(wishes.chase_claims(world.engine, at(days=18), LIMITS),
                                wishes.chase_claims(engine2, at(days=18), LIMITS))
    assert sorted(runs) == [0, 1]
    wish = await world.wish(number)
    assert (wish.status, wish.claimer_count, wish.claim_round) == ("approved", 0, 1)
    assert "放回心愿墙" in (await world.notices(LIU))[-1]
    assert "重新放回心愿墙" in (await world.notices(ZHANG))[-1]
    assert len(await world.notices(CHEN)) == committee_before + 1 and "放回心愿墙" in (await world.notices(CHEN))[-1]
    assert number in (await world.run(wishes.wall, ZHAO)).reply
    assert "已放回心愿墙" in (await world.run(wishes.my_service, LIU)).reply
    # someone else takes it on: a new claim, the old claimer is not part of it
    assert (await world.run(wishes.claim, ZHAO, number, at(days=19))).code == "claimed"
    assert (await world.detail(number))["claimed_by"] == ["赵党员"]
    assert (await world.run(wishes.fulfil, LIU, number, "用时1小时", at(days=19))).code == "not_allowed"
    assert (await world.run(wishes.claim, LIU, number, at(days=19))).code == "taken"


async def test_an_unanswered_fulfilment_is_reminded_then_closed_with_its_hours(world, engine2):
    number = await world.claimed(LIU, group=True)
    await world.run(wishes.join, ZHAO, number, NOW, LIMITS)
    await world.run(wishes.fulfil, LIU, number, "送去了米和油 用时1小时", NOW)
    assert await wishes.chase_confirmations(world.engine, at(days=3), LIMITS) == 0
    runs = await asyncio.gather(wishes.chase_confirmations(world.engine, at(days=4), LIMITS),
                                wishes.chase_confirmations(engine2, at(days=4), LIMITS))
    assert sorted(runs) == [0, 1]
    reminder = (await world.notices(ZHANG))[-1]
    assert "完成了吗" in reminder and "1 已完成" in reminder and "2 没有完成" in reminder
    assert await wishes.chase_confirmations(world.engine, at(days=5), LIMITS) == 0
    runs = await asyncio.gather(wishes.chase_confirmations(world.engine, at(days=7), LIMITS),
                                wishes.chase_confirmations(engine2, at(days=7), LIMITS))
    assert sorted(runs) == [0, 1]
    wish = await world.wish(number)
    assert (wish.status, wish.close_reason) == ("closed", "unconfirmed")
    assert (await world.detail(number))["hours"] == 1.0
    assert "30分钟" in (await world.notices(ZHAO))[-1]
    assert (await world.run(wishes.confirm, ZHANG, number, at(days=8))).code == "not_now"


async def test_a_confirmed_wish_is_not_chased(world):
    number = await world.claimed()
    await world.run(wishes.fulfil, LIU, number, "好了 用时1小时", NOW)
    await world.run(wishes.confirm, ZHANG, number, NOW)
    assert await wishes.chase_confirmations(world.engine, at(days=30), LIMITS) == 0
    assert await wishes.chase_claims(world.engine, at(days=30), LIMITS) == 0
    assert (await world.wish(number)).close_reason == "confirmed"


async def test_hours_report_per_member_unit_and_the_idle(world):
    async def closed(by, minutes_text, when, group_with=()):
        number = await world.approved(LI, "帮忙搬东西")
        await world.run(wishes.claim, by, number, when, group=bool(group_with))
        for other in group_with:
            await world.run(wishes.join, other, number, when, LIMITS)
        await world.run(wishes.fulfil, by, number, f"搬好了 {minutes_text}", when)
        await world.run(wishes.confirm, LI, number, when)

    await closed(LIU, "用时2小时", datetime(2026, 11, 5))
    await closed(LIU, "用时1小时", datetime(2026, 11, 20), group_with=(SUN,))  # 30 minutes each, one wish of the unit
    await closed(ZHAO, "用时3小时", datetime(2026, 12, 1))  # December: not in November's report
    unclaimed = await world.claimed(SUN)  # claimed, never closed: no hours
    assert unclaimed
    async with world.sessions() as session:
        report = await repo.hours_report(session, datetime(2026, 11, 1), datetime(2026, 12, 1),
                                         datetime(2026, 10, 1), datetime(2027, 1, 1))
    members = {m.name: (m.unit, m.minutes, m.wishes) for m in report.members}
    assert members == {"刘党员": ("区税务局", 150, 2), "孙党员": ("区税务局", 30, 1), "赵党员": ("市第一医院", 0, 0),
                       "钱党员": ("某公司", 0, 0)}
    assert report.members[0].name == "刘党员"
    units = {u.unit: (u.minutes, u.wishes) for u in report.units}
    assert units == {"区税务局": (180, 2), "市第一医院": (0, 0), "某公司": (0, 0)}
    assert [m.name for m in report.idle] == ["钱党员"]  # 赵党员 claimed in December, still this quarter
    assert QIAN in [m.openid for m in report.idle]
