"""Time limits: reminders, escalation (督办) levels and unrated closing, each once, also when run twice at once."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

import nlp
from handlers import followup
from handlers.followup import (NEW_DEADLINE, TimeLimitsError, close_unrated, escalate_overdue, followup_jobs,
                               load_time_limits, remind_due)
from storage.db import create_engine
from storage.migrate import upgrade_async
from storage.models import Community, Grid, Outbox, Staff, Ticket, TicketEvent

NOW = datetime(2026, 11, 22, 2, 0)
SECOND_AFTER = timedelta(hours=24)
STAFF = [  # openid, role, grid, is_head
    ("o_worker1", "grid_worker", 1, False),
    ("o_worker2", "grid_worker", 2, False),
    ("o_property", "property", None, False),
    ("o_property_head", "property", None, True),
    ("o_rc_member", "residents_committee", None, False),
    ("o_rc_head", "residents_committee", None, True),
    ("o_duty", "duty_desk", None, False),
    ("o_admin", "admin", None, False),
    ("o_former", "grid_worker", 1, False),  # inactive below
]


@pytest.fixture
async def engines(database_url):
    """Two engines on one database: two app processes."""
    await upgrade_async(database_url)
    pair = create_engine(database_url), create_engine(database_url)
    async with pair[0].begin() as conn:
        await conn.execute(insert(Community.__table__).values(id=1, code="c1", name="幸福社区"))
        await conn.execute(insert(Grid.__table__), [dict(id=g, community_id=1, code=f"g{g}", name=f"{g}号网格")
                                                    for g in (1, 2)])
        await conn.execute(insert(Staff.__table__), [
            dict(id=i, openid=o, role=r, grid_id=g, is_head=h, name=o, active=o != "o_former", created_at=NOW)
            for i, (o, r, g, h) in enumerate(STAFF, 1)])
    yield pair
    for engine in pair:
        await engine.dispose()


@pytest.fixture
def engine(engines):
    return engines[0]


def staff_id(openid: str) -> int:
    return next(i for i, s in enumerate(STAFF, 1) if s[0] == openid)


async def add_ticket(engine, ticket_id: int, *, status: str = "dispatched", route: str = "grid_worker",
                     grid_id: int | None = 1, dispatched_ago: timedelta = timedelta(hours=20),
                     response_hours: float = 24, resolve_hours: float = 168, **fields) -> None:
    dispatched_at = NOW - dispatched_ago
    values = dict(id=ticket_id, number=str(100000 + ticket_id), openid="o_resident", text="楼道灯坏了",
                  category="facilities", confidence=0.9, status=status, route=route, grid_id=grid_id,
                  created_at=dispatched_at, updated_at=dispatched_at, dispatched_at=dispatched_at,
                  response_due=dispatched_at + timedelta(hours=response_hours),
                  resolve_due=dispatched_at + timedelta(hours=resolve_hours)) | fields
    async with engine.begin() as conn:
        await conn.execute(insert(Ticket.__table__).values(**values))


async def notices(engine) -> list[tuple[str, int, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(Outbox.openid, Outbox.ticket_id, Outbox.text).order_by(Outbox.id))
        return [tuple(r) for r in rows]


async def recipients(engine, ticket_id: int | None = None) -> list[str]:
    return sorted(o for o, t, _ in await notices(engine) if ticket_id is None or t == ticket_id)


async def events(engine, ticket_id: int) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(TicketEvent.action, TicketEvent.note)
                                  .where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id))
        return [tuple(r) for r in rows]


async def ticket(engine, ticket_id: int):
    async with engine.connect() as conn:
        return (await conn.execute(select(Ticket.__table__).where(Ticket.id == ticket_id))).one()


async def twice_at_once(job, engines, *args) -> list[int]:
    """The job in two processes at the same moment."""
    return list(await asyncio.gather(job(engines[0], *args), job(engines[1], *args)))


# -- reminders ------------------------------------------------------------------------------------------
async def test_a_near_response_deadline_reminds_the_grid_worker_once(engines, engine):
    await add_ticket(engine, 1)  # 24 h to accept, 20 h gone: inside the last 20 %
    await add_ticket(engine, 2, dispatched_ago=timedelta(hours=2))  # plenty of time left
    await add_ticket(engine, 3, dispatched_ago=timedelta(hours=25))  # already late: escalation's business
    assert sorted(await twice_at_once(remind_due, engines, NOW, 0.2)) == [0, 1]
    [(openid, ticket_id, text)] = await notices(engine)
    assert (openid, ticket_id) == ("o_worker1", 1)  # not the inactive one, not the other grid's worker
    assert "【催办】" in text and "100001" in text and "签收" in text
    assert await events(engine, 1) == [("reminded", "签收时限提醒")]
    assert (await ticket(engine, 1)).reminded
    assert await remind_due(engine, NOW + timedelta(hours=1), 0.2) == 0


async def test_an_accepted_ticket_reminds_its_assignee_of_the_resolve_deadline(engine):
    await add_ticket(engine, 1, status="accepted", route="property", grid_id=None,
                     assignee_id=staff_id("o_property"), accepted_at=NOW - timedelta(hours=150),
                     dispatched_ago=timedelta(hours=151))
    assert await remind_due(engine, NOW, 0.2) == 1
    [(openid, _, text)] = await notices(engine)
    assert openid == "o_property" and "办结 100001" in text


async def test_a_body_without_members_falls_back_to_the_duty_desk(engine):
    await add_ticket(engine, 1, route="mediation", grid_id=None)
    assert await remind_due(engine, NOW, 0.2) == 1
    assert await recipients(engine) == ["o_duty"]


async def test_a_new_deadline_gets_its_own_reminder(engine):
    await add_ticket(engine, 1)
    assert await remind_due(engine, NOW, 0.2) == 1
    later = NOW + timedelta(hours=130)
    async with engine.begin() as conn:  # accepted: the resolve deadline now counts
        await conn.execute(update(Ticket.__table__).where(Ticket.id == 1).values(
            status="accepted", accepted_at=NOW, assignee_id=staff_id("o_worker1"), **NEW_DEADLINE))
    assert await remind_due(engine, later, 0.2) == 1
    assert [e for e in await events(engine, 1)] == [("reminded", "签收时限提醒"), ("reminded", "办结时限提醒")]


async def test_the_database_hands_the_reminder_job_every_ticket_due_a_reminder_and_few_others(engine):
    """reminder_candidates filters in SQL (each database's own date arithmetic): against the exact rule
    (ticket_rules.remind_at) over spans from a minute to two weeks, each stage, and moments around the
    reminder time and the deadline, it misses no ticket, and passes none whose reminder is minutes away."""
    from handlers.ticket_rules import remind_at

    spans = [timedelta(minutes=1), timedelta(minutes=3), timedelta(hours=2), timedelta(hours=24), timedelta(days=15)]
    offsets = [timedelta(seconds=s) for s in (-600, -181, -61, -1, 0, 1, 59, 61, 600)]
    rows, expected, far = [], set(), set()
    for n, (span, offset, status) in enumerate(
            (sp, o, st) for sp in spans for o in offsets for st in ("dispatched", "accepted", "reopened", "resolved")):
        ticket_id = n + 1
        due_at_remind = remind_at(NOW, NOW + span, 0.2)  # the reminder time of a deadline that starts at NOW …
        start = NOW - (due_at_remind - NOW) + offset  # … moved so that it falls `offset` before now
        due = start + span
        if status == "dispatched":  # the response deadline counts, from dispatch
            fields = dict(response_due=due, resolve_due=due + timedelta(days=30), dispatched_at=start,
                          accepted_at=None)
        else:  # the resolve deadline counts, from acceptance
            fields = dict(response_due=start, resolve_due=due, dispatched_at=start - timedelta(hours=1),
                          accepted_at=start)
        rows.append(dict(id=ticket_id, number=str(100000 + ticket_id), openid="o", text="t", category="facilities",
                         confidence=0.9, status=status, route="grid_worker", grid_id=1, created_at=start,
                         updated_at=start, **fields))
        reminder = remind_at(start, due, 0.2)
        if status != "resolved" and reminder <= NOW < due:
            expected.add(ticket_id)
        if status == "resolved" or reminder > NOW + timedelta(minutes=5) or due <= NOW:
            far.add(ticket_id)
    async with engine.begin() as conn:
        await conn.execute(insert(Ticket.__table__), rows)
    got = {t.id for t in await followup.reminder_candidates(engine, NOW, 0.2)}
    assert expected and expected <= got
    assert not got & far, sorted(got & far)


# -- escalation -----------------------------------------------------------------------------------------
async def test_grid_work_escalates_to_the_committee_head_then_the_admins_each_once(engines, engine):
    await add_ticket(engine, 1, dispatched_ago=timedelta(hours=25))  # 1 h past the response deadline
    assert sorted(await twice_at_once(escalate_overdue, engines, NOW, SECOND_AFTER)) == [0, 1]
    assert await recipients(engine) == ["o_rc_head", "o_worker1"]
    assert all("【一级督办】" in text and "100001" in text for *_, text in await notices(engine))
    assert await escalate_overdue(engine, NOW + timedelta(hours=20), SECOND_AFTER) == 0
    row = await ticket(engine, 1)
    assert (row.escalation_level, row.escalated_at) == (1, NOW)

    later = NOW + timedelta(hours=24)  # 25 h past the deadline
    assert sorted(await twice_at_once(escalate_overdue, engines, later, SECOND_AFTER)) == [0, 1]
    assert await recipients(engine) == ["o_admin", "o_duty", "o_rc_head", "o_worker1"]
    assert await escalate_overdue(engine, later + timedelta(days=30), SECOND_AFTER) == 0
    assert await events(engine, 1) == [("escalated", "一级督办"), ("escalated", "二级督办")]
    assert (await ticket(engine, 1)).escalation_level == 2


async def test_a_committee_ticket_escalates_to_its_own_head(engine):
    await add_ticket(engine, 1, route="property", grid_id=None, dispatched_ago=timedelta(hours=25))
    assert await escalate_overdue(engine, NOW, SECOND_AFTER) == 1
    assert await recipients(engine) == ["o_property", "o_property_head"]  # the head is told once


async def test_a_headless_body_escalates_to_the_residents_committee_head(engine):
    await add_ticket(engine, 1, status="accepted", route="mediation", grid_id=None,
                     assignee_id=staff_id("o_rc_member"), dispatched_ago=timedelta(hours=170))
    assert await escalate_overdue(engine, NOW, SECOND_AFTER) == 1
    assert await recipients(engine) == ["o_rc_head", "o_rc_member"]
    assert "办结时限" in (await notices(engine))[0][2]


async def test_a_scheduler_that_was_down_still_raises_every_level_once(engine):
    await add_ticket(engine, 1, dispatched_ago=timedelta(hours=60))  # 36 h late: straight to level 2
    assert await escalate_overdue(engine, NOW, SECOND_AFTER) == 1
    assert await events(engine, 1) == [("escalated", "一级督办"), ("escalated", "二级督办")]
    assert await recipients(engine) == ["o_admin", "o_duty", "o_rc_head", "o_worker1"]


async def test_tickets_on_time_or_finished_are_left_alone(engine):
    await add_ticket(engine, 1, dispatched_ago=timedelta(hours=1))
    await add_ticket(engine, 2, status="resolved", dispatched_ago=timedelta(days=30), resolved_at=NOW)
    await add_ticket(engine, 3, status="closed", dispatched_ago=timedelta(days=30))
    await add_ticket(engine, 4, status="accepted", dispatched_ago=timedelta(hours=30))  # resolve due in 138 h
    assert await escalate_overdue(engine, NOW, SECOND_AFTER) == 0
    assert await remind_due(engine, NOW, 0.2) == 0
    assert await notices(engine) == []


# -- closing unrated tickets ---------------------------------------------------------------------------------
async def test_unrated_tickets_close_after_the_timeout_once(engines, engine):
    await add_ticket(engine, 1, status="resolved", resolved_at=NOW - timedelta(days=4))
    await add_ticket(engine, 2, status="resolved", resolved_at=NOW - timedelta(days=1))
    assert sorted(await twice_at_once(close_unrated, engines, NOW, timedelta(days=3))) == [0, 1]
    row = await ticket(engine, 1)
    assert (row.status, row.close_reason, row.closed_at, row.rating) == ("closed", "unrated", NOW, None)
    assert await events(engine, 1) == [("closed", "未评价")]
    [(openid, _, text)] = await notices(engine)
    assert openid == "o_resident" and "100001" in text and "3天" in text
    assert (await ticket(engine, 2)).status == "resolved"
    assert await close_unrated(engine, NOW, timedelta(days=3)) == 0


async def test_jobs_for_the_scheduler(engine):
    jobs = followup_jobs(engine, every_s=30)
    assert [(name, interval) for name, interval, _ in jobs] == [("remind", 30), ("escalate", 30),
                                                                ("close_unrated", 150)]
    await add_ticket(engine, 1)
    assert [await job(NOW) for _, _, job in jobs] == [1, 0, 0]


# -- time limits ----------------------------------------------------------------------------------------------
def test_time_limits_default_to_the_taxonomy():
    limits = load_time_limits(None)
    assert limits == {code: (c.response_hours, c.resolve_hours) for code, c in nlp.CATEGORIES.items()}


def test_time_limits_file_overrides_some_categories(tmp_path):
    path = tmp_path / "limits.json"
    path.write_text(json.dumps({"environment": {"response_hours": 12, "resolve_hours": 72},
                                "water": {"response_hours": 1.5}}), encoding="utf-8")
    limits = load_time_limits(path)
    assert limits["environment"] == (12, 72)
    assert limits["water"] == (1.5, nlp.CATEGORIES["water"].resolve_hours)
    assert limits["noise"] == (nlp.CATEGORIES["noise"].response_hours, nlp.CATEGORIES["noise"].resolve_hours)


@pytest.mark.parametrize(("content", "complaint"), [
    ("{not json", "cannot read"),
    ("[1, 2]", "expected an object"),
    ('{"weather": {"response_hours": 1}}', "unknown category 'weather'"),
    ('{"noise": {"respond_hours": 1}}', "noise"),
    ('{"noise": {"response_hours": 0}}', "noise.response_hours"),
    ('{"noise": {"response_hours": true}}', "noise.response_hours"),
    ('{"noise": {"resolve_hours": "7天"}}', "noise.resolve_hours"),
    ('{"noise": {"response_hours": 200, "resolve_hours": 100}}', "exceeds resolve_hours"),
])
def test_a_bad_time_limits_file_says_what_is_wrong(tmp_path, content, complaint):
    path = tmp_path / "limits.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TimeLimitsError, match=complaint):
        load_time_limits(path)


def test_a_missing_time_limits_file_is_named(tmp_path):
    with pytest.raises(TimeLimitsError, match="limits.json"):
        load_time_limits(tmp_path / "limits.json")
    assert followup.TIME_LIMITS_ENV == "LINLI_TIME_LIMITS_FILE"
