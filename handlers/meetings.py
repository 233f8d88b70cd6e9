"""议事会: the committee schedules a meeting on a proposal (time, place), residents sign in (签到 编号), and the
minutes (纪要) and the options it settled for the vote are recorded. Meetings have numbers in the tickets'
number space, so 签到 N never means a ticket."""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker

from handlers import deliberation_rules as rules
from handlers import deliberation_texts as T
from handlers.actors import Actor
from handlers.deliberation_settings import community_order
from handlers.notify import notify
from handlers.proposals import Done, event, move, moving
from handlers.votes import MAX_OPTIONS
from storage import proposals as repo
from storage.ids import ticket_number
from storage.models import Meeting, MeetingSignIn, Proposal
from storage.writer import Unit


async def schedule_meeting(sessions: async_sessionmaker, ids, *, ref: str | int, starts_at: datetime, place: str,
                           actor: Actor, now: datetime) -> Done:
    """A meeting on an accepted proposal (which is now being deliberated); its supporters are told."""
    if not place.strip():
        return Done("no_place", "请写明开会的地点。")
    async with sessions() as session:
        proposal, after = await moving(session, ref, "meet", actor)
        told = await repo.supporter_openids(session, proposal.id)
    meeting_id = await ids.next()
    number = ticket_number(meeting_id)
    unit = move(proposal, after, now)
    unit.add(Meeting, id=meeting_id, number=number, proposal_id=proposal.id, starts_at=starts_at, place=place[:200],
             minutes="", options="", created_by=actor.label[:64], created_at=now)
    event(unit, proposal.id, actor.label, "meeting_scheduled", f"编号 {number}：{starts_at:%Y-%m-%d %H:%M} UTC，{place}",
          now)
    notice = T.meeting_notice(number, proposal.number, proposal.title, starts_at, place)
    for openid in told:
        notify(unit, openid, notice, now)
    return Done("scheduled", f"已安排议事会，编号：{number}", unit, number)


async def sign_in(sessions: async_sessionmaker, *, ref: str | int, openid: str, now: datetime) -> Done:
    """签到 编号: from an hour before the meeting to four hours after it starts; once per person."""
    async with sessions() as session:
        meeting = await repo.find_meeting(session, ref)
        if meeting is None:
            return Done("not_found", "没有这个议事会编号，请核对。")
        proposal = await session.get(Proposal, meeting.proposal_id)
        order = await community_order(session, (await repo.where_is(session, proposal))[0])
        if not rules.may_sign_in(now, meeting.starts_at, order):
            return Done("not_now", f"议事会在{T.local_time(meeting.starts_at)}开始，开始前一小时起可以签到。")
        if await session.get(MeetingSignIn, (meeting.id, openid)) is not None:
            return Done("already", T.signed_in(meeting.number))
        home = await repo.home_of(session, openid)
    unit = Unit()
    unit.add(MeetingSignIn, meeting_id=meeting.id, openid=openid, household_id=home[0] if home else None, at=now)
    return Done("signed_in", T.signed_in(meeting.number), unit, meeting.number)


async def _meeting_update(sessions: async_sessionmaker, ref, actor: Actor, now: datetime, action: str, note: str,
                          **values) -> Done:
    if not actor.committee:
        return Done("not_allowed", "只有社区可以记录议事会。")
    async with sessions() as session:
        meeting = await repo.find_meeting(session, ref)
    if meeting is None:
        raise LookupError("没有这个议事会")
    unit = Unit()
    unit.updates.append(update(Meeting).where(Meeting.id == meeting.id).values(**values))
    event(unit, meeting.proposal_id, actor.label, action, f"议事会 编号 {meeting.number}：{note}", now)
    return Done(action, f"已记录，议事会编号：{meeting.number}", unit, meeting.number)


async def record_minutes(sessions: async_sessionmaker, *, ref: str | int, minutes: str, actor: Actor,
                         now: datetime) -> Done:
    """纪要: replaces earlier minutes; every version stays on the timeline."""
    if not minutes.strip():
        return Done("empty", "纪要是空的。")
    return await _meeting_update(sessions, ref, actor, now, "minutes", minutes, minutes=minutes, minutes_at=now)


async def record_options(sessions: async_sessionmaker, *, ref: str | int, options: list[str], actor: Actor,
                         now: datetime) -> Done:
    """The options the meeting settled for the vote (a vote opened on the proposal takes them by default)."""
    options = [o.strip() for o in options if o.strip()]
    if not 2 <= len(options) <= MAX_OPTIONS:
        return Done("bad_options", f"选项应有 2 到 {MAX_OPTIONS} 个。")
    return await _meeting_update(sessions, ref, actor, now, "options", "、".join(options),
                                 options=json.dumps(options, ensure_ascii=False))


async def meeting_options(sessions: async_sessionmaker, proposal_id: int) -> list[str]:
    """The options recorded by the proposal's latest meeting that recorded some ([] if none)."""
    async with sessions() as session:
        meetings = await repo.meetings_of(session, proposal_id)
    recorded = [m for m in meetings if m.options]
    return json.loads(recorded[-1].options) if recorded else []
