"""Follow-through on time limits (接诉即办): remind before a deadline, escalate (督办) after it, close unrated.

Every job is idempotent and safe to run in several processes at once. A ticket changes only through a
conditional UPDATE on the very state the job moves (`reminded`, `escalation_level`, `status`), and the
notices (outbox rows) and the timeline entry are written in the same transaction, only when that UPDATE
changed the row: the loser of a race writes nothing.

The deadline that counts follows the status: a dispatched ticket owes a response (签收) by response_due; an
accepted or reopened one owes a resolution (办结) by resolve_due. `reminded` and `escalation_level` belong
to the current deadline: whoever gives a ticket a new deadline (accept, reassign, reopen) resets them with
NEW_DEADLINE, so that deadline gets its own reminder and escalation.
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import DateTime, Float, and_, func, insert, literal, or_, select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.expression import FunctionElement

import nlp
from handlers import dispatch, ticket_rules
from handlers.notify import notify
from handlers.texts import category_name, local_time
from storage.models import Staff, Ticket, TicketEvent
from storage.writer import Unit

log = logging.getLogger(__name__)
_T = Ticket.__table__
TIME_LIMITS_ENV = "LINLI_TIME_LIMITS_FILE"
NEW_DEADLINE = {"reminded": False, "escalation_level": 0, "escalated_at": None}
_STAGE = {"dispatched": "response", "accepted": "resolve", "reopened": "resolve"}
_STAGE_WORD = {"response": "签收", "resolve": "办结"}
_LEVEL_NAME = {1: "一级督办", 2: "二级督办"}
Job = tuple[str, float, Callable[[datetime], Awaitable[int]]]


# -- time limits per category ----------------------------------------------------------------------------------
class TimeLimitsError(ValueError):
    """The time-limits file is unreadable or names something wrong; the message says what and where."""


def load_time_limits(path: str | os.PathLike | None) -> dict[str, tuple[float, float]]:
    """category code -> (response_hours, resolve_hours): nlp.CATEGORIES' defaults, overridden by the JSON
    file at `path` (the value of LINLI_TIME_LIMITS_FILE), e.g. {"environment": {"response_hours": 12}}."""
    limits: dict[str, tuple[float, float]] = {
        code: (c.response_hours, c.resolve_hours) for code, c in nlp.CATEGORIES.items()}
    if path is None:
        return limits
    try:
        overrides = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TimeLimitsError(f"{path}: cannot read time limits: {exc}") from None
    if not isinstance(overrides, dict):
        raise TimeLimitsError(f"{path}: expected an object of category code -> limits")
    for code, entry in overrides.items():
        if code not in limits:
            raise TimeLimitsError(f"{path}: unknown category {code!r} (known: {', '.join(limits)})")
        if not isinstance(entry, dict) or not entry or set(entry) - {"response_hours", "resolve_hours"}:
            raise TimeLimitsError(f"{path}: {code}: expected {{\"response_hours\": N, \"resolve_hours\": N}}")
        for key, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise TimeLimitsError(f"{path}: {code}.{key}: expected a positive number of hours, got {value!r}")
        response = entry.get("response_hours", limits[code][0])
        resolve = entry.get("resolve_hours", limits[code][1])
        if response > resolve:
            raise TimeLimitsError(f"{path}: {code}: response_hours ({response}) exceeds resolve_hours ({resolve})")
        limits[code] = (response, resolve)
    return limits


# -- the scheduler's jobs ------------------------------------------------------------------------------------
def followup_jobs(engine: AsyncEngine, *, lead_fraction: float = 0.2, second_after: timedelta = timedelta(hours=24),
                  rating_timeout: timedelta = timedelta(days=3), every_s: float = 60) -> list[Job]:
    """The three jobs as the Scheduler takes them: (name, interval_s, job(now))."""
    return [
        ("remind", every_s, lambda now: remind_due(engine, now, lead_fraction)),
        ("escalate", every_s, lambda now: escalate_overdue(engine, now, second_after)),
        ("close_unrated", every_s * 5, lambda now: close_unrated(engine, now, rating_timeout)),
    ]


async def remind_due(engine: AsyncEngine, now: datetime, lead_fraction: float = 0.2) -> int:
    """催办: once per deadline, tell whoever owes the ticket that its deadline is near; returns how many."""
    reminded = 0
    for t in await reminder_candidates(engine, now, lead_fraction):
        stage, start, due = _deadline(t)
        if start is None or ticket_rules.remind_at(start, due, lead_fraction) > now:
            continue
        async with AsyncSession(engine) as session, session.begin():
            if not await _changed(session, update(_T).where(
                    _T.c.id == t.id, _T.c.reminded.is_(False), *_same_deadline(t)).values(reminded=True)):
                continue
            unit = Unit()
            for openid in _openids(await _owers(session, t)):
                notify(unit, openid, _reminder_text(t, stage, due), now, about=_about(t))
            unit.add(TicketEvent, ticket_id=t.id, at=now, actor="system", action="reminded",
                     note=f"{_STAGE_WORD[stage]}时限提醒")
            await _write(session, unit)
        reminded += 1
    return reminded


async def escalate_overdue(engine: AsyncEngine, now: datetime, second_after: timedelta) -> int:
    """督办: past its deadline a ticket goes to the heads (level 1), after `second_after` more to the admins
    and the duty desk (level 2); each level once per deadline. Returns how many tickets moved up."""
    escalated = 0
    stored_level = _T.c.escalation_level  # only tickets due a new level, not those waiting out `second_after` at 1
    for t in await _open_tickets(engine, stored_level < 2, _current_due(lambda due: or_(
            and_(stored_level == 0, due < now), due < now - second_after))):
        stage, _, due = _deadline(t)
        level = ticket_rules.escalation_level(now, due, second_after)
        if level <= t.escalation_level:
            continue
        async with AsyncSession(engine) as session, session.begin():
            if not await _changed(session, update(_T).where(
                    _T.c.id == t.id, _T.c.escalation_level == t.escalation_level, *_same_deadline(t))
                    .values(escalation_level=level, escalated_at=now)):
                continue
            unit = Unit()
            for reached in range(t.escalation_level + 1, level + 1):  # a scheduler that was down skips none
                staff = await (_heads_and_owers(session, t) if reached == 1 else _admins(session, t))
                if not staff:
                    log.warning("ticket %s: nobody to receive %s", t.number, _LEVEL_NAME[reached])
                for openid in _openids(staff):
                    notify(unit, openid, _escalation_text(t, stage, due, reached), now, about=_about(t))
                unit.add(TicketEvent, ticket_id=t.id, at=now, actor="system", action="escalated",
                         note=_LEVEL_NAME[reached])
            await _write(session, unit)
        escalated += 1
    return escalated


async def close_unrated(engine: AsyncEngine, now: datetime, rating_timeout: timedelta) -> int:
    """Resolved tickets the resident has not rated within the timeout: closed as 未评价 (never satisfied)."""
    closed_status = ticket_rules.next_status("resolved", "expire")
    closed = 0
    for t in await _open_tickets(engine, _T.c.status == "resolved", _T.c.rating.is_(None),
                                 _T.c.resolved_at <= now - rating_timeout):
        async with AsyncSession(engine) as session, session.begin():
            if not await _changed(session, update(_T).where(
                    _T.c.id == t.id, _T.c.status == "resolved", _T.c.rating.is_(None),
                    _T.c.resolved_at == t.resolved_at)
                    .values(status=closed_status, close_reason="unrated", closed_at=now, updated_at=now)):
                continue
            unit = Unit()
            notify(unit, t.openid, _unrated_text(t, rating_timeout), now, about=_about(t))
            unit.add(TicketEvent, ticket_id=t.id, at=now, actor="system", action="closed", note="未评价")
            await _write(session, unit)
        closed += 1
    return closed


# -- which deadline, who is told --------------------------------------------------------------------------------
async def reminder_candidates(engine: AsyncEngine, now: datetime, lead_fraction: float) -> list:
    """The unreminded open tickets whose reminder may be due: the database keeps those whose current deadline
    is less than lead_fraction of its span away (or a minute, ticket_rules.remind_at's floor), with a minute
    to spare, and remind_due applies the exact rule. Without this filter the job read every open ticket into
    the event loop each minute: with tens of thousands open, seconds in which no resident got an answer."""
    at = literal(now, DateTime())
    margin_h = 2 / 60  # remind_at's one-minute floor, plus a minute for rounding in the databases' date arithmetic

    def near(due, start):
        left_h = _hours_between(due, at)
        return and_(due > at, or_(left_h <= lead_fraction * _hours_between(due, start) + margin_h, left_h <= margin_h))

    return await _open_tickets(engine, _T.c.reminded.is_(False), or_(
        and_(_T.c.status == "dispatched", near(_T.c.response_due, _T.c.dispatched_at)),
        and_(_T.c.status.in_(("accepted", "reopened")),
             near(_T.c.resolve_due, func.coalesce(_T.c.accepted_at, _T.c.dispatched_at)))))


class _hours_between(FunctionElement):
    """later - earlier, in hours (a float): each database subtracts dates its own way."""

    type = Float()
    inherit_cache = True


@compiles(_hours_between, "sqlite")
def _hours_between_sqlite(element, compiler, **kw) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({later}) - julianday({earlier})) * 24.0)"


@compiles(_hours_between, "postgresql")
def _hours_between_postgresql(element, compiler, **kw) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"(EXTRACT(EPOCH FROM ({later} - {earlier})) / 3600.0)"


async def _open_tickets(engine: AsyncEngine, *conditions) -> list:
    async with engine.connect() as conn:
        return list((await conn.execute(select(_T).where(*conditions).order_by(_T.c.id))).all())


def _current_due(compare: Callable) -> object:
    return or_(and_(_T.c.status == "dispatched", compare(_T.c.response_due)),
               and_(_T.c.status.in_(("accepted", "reopened")), compare(_T.c.resolve_due)))


def _deadline(t) -> tuple[str, datetime | None, datetime]:
    """(stage, when its clock started, when it runs out) of the ticket's current deadline."""
    stage = _STAGE[t.status]
    if stage == "response":
        return stage, t.dispatched_at, t.response_due
    return stage, t.accepted_at or t.dispatched_at, t.resolve_due


def _same_deadline(t) -> tuple:
    """The ticket is still in the status and deadline we decided on (not accepted or reassigned meanwhile)."""
    return (_T.c.status == t.status, _T.c.response_due == t.response_due, _T.c.resolve_due == t.resolve_due)


async def _changed(session: AsyncSession, statement) -> bool:
    return (await session.execute(statement)).rowcount == 1


async def _owers(session: AsyncSession, t) -> list[Staff]:
    """Who owes the next step: the assignee; before anyone accepted, the route body (the duty desk if empty)."""
    if t.assignee_id is not None:
        assignee = await session.get(Staff, t.assignee_id)
        if assignee is not None and assignee.active:
            return [assignee]
    return (await dispatch.members(session, (t.route,), t.grid_id)
            or await dispatch.members(session, ("duty_desk",), t.grid_id))


async def _heads_and_owers(session: AsyncSession, t) -> list[Staff]:
    """Level 1: the heads of the route body; of the residents' committee for grid work or a headless body."""
    return await dispatch.supervisors(session, t.route, t.grid_id) + await _owers(session, t)


async def _admins(session: AsyncSession, t) -> list[Staff]:
    return await dispatch.members(session, ("admin", "duty_desk"), t.grid_id)


def _openids(staff: Iterable[Staff]) -> list[str]:
    return list(dict.fromkeys(s.openid for s in staff))  # one person in two roles is told once


async def _write(session: AsyncSession, unit: Unit) -> None:
    for table, row in unit.inserts:
        await session.execute(insert(table), [row])


# -- what staff and residents read ---------------------------------------------------------------------------------
def _about(t):
    return dispatch.ticket_subject(t.id, t.number, t.status)


def _reminder_text(t, stage: str, due: datetime) -> str:
    word = _STAGE_WORD[stage]
    how = f"回复“签收 {t.number}”" if stage == "response" else f"办完回复“办结 {t.number} 办理情况”"
    return f"【催办】编号 {t.number}（{category_name(t.category)}）须在{local_time(due)}前{word}，请抓紧。{how}"


def _escalation_text(t, stage: str, due: datetime, level: int) -> str:
    word = _STAGE_WORD[stage]
    ask = "请督促办理。" if level == 1 else "请社区协调处理。"
    return (f"【{_LEVEL_NAME[level]}】编号 {t.number}（{category_name(t.category)}）{word}时限{local_time(due)}"
            f"已过，仍未{word}。{ask}回复“工单 {t.number}”看详情。")


def _unrated_text(t, rating_timeout: timedelta) -> str:
    days = max(1, round(rating_timeout / timedelta(days=1)))
    return (f"您反映的问题（编号 {t.number}）已办结，{days}天内未收到您的评价，已自动结束。"
            "如果问题还在，直接打字再告诉我们。")
