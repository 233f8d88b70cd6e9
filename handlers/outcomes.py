"""民事民办 and 民事民评: a decision's tasks, and the voters' rating of how it was carried out.

A task is a ticket (intent "task") dispatched to the responsible body with a deadline, so the tickets' own
machinery follows it: 签收/办结 by the body's staff, reminders and escalation (督办) on its time limits, the
rates. Its progress notices go to the proposer (or, for a hot spot, to the resident who first reported it),
and the proposal's view lists every task with its status. When the tasks are done the voters are asked to
rate the outcome (满意 / 基本满意 / 不满意); the ratings are on the record.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

import nlp
from handlers import deliberation_rules as rules
from handlers import deliberation_texts as T
from handlers import dispatch, texts
from handlers.actors import Actor
from handlers.followup import Job
from handlers.notify import notify
from handlers.proposals import Done, event, move, moving
from storage import proposals as repo
from storage import votes as vote_repo
from storage.commit import commit
from storage.db import sessionmaker
from storage.ids import ticket_number
from storage.models import (Cluster, DeliberationTask, OutcomeRating, Proposal, Staff, Ticket, TicketEvent,
                            TicketParty, Vote)
from storage.writer import Conflict, Unit

BODIES = ("grid_worker", "property", "owners_committee", "residents_committee", "mediation")
DONE = frozenset({"resolved", "closed"})


@dataclass(frozen=True)
class Task:
    body: str  # a route: who does it
    text: str
    deadline: datetime
    category: str = "other"


async def _client(session, proposal: Proposal, actor: Actor) -> str:
    """Whose ticket the task is (its progress notices go there): the proposer; for a hot spot the resident
    who reported it first; else the committee member who created it, or the residents' committee's head."""
    if proposal.proposer:
        return proposal.proposer
    if proposal.cluster_id is not None and (cluster := await session.get(Cluster, proposal.cluster_id)):
        root = await session.get(Ticket, cluster.id)  # a cluster's id is its first ticket's
        if root is not None:
            return root.openid
    if not actor.who.startswith("cli:"):
        return actor.who
    head = (await session.execute(select(Staff.openid).where(
        Staff.role == "residents_committee", Staff.is_head.is_(True), Staff.active.is_(True)).order_by(Staff.id)
    )).scalars().first()
    return head or "system"


async def create_task(sessions: async_sessionmaker, ids, *, ref: str | int, task: Task, actor: Actor,
                      now: datetime, time_limits: dict | None = None) -> Done:
    """民事民办: a decided matter gets a task for a responsible body, with a deadline (its resolve limit)."""
    if task.body not in BODIES:
        return Done("bad_body", f"承办单位应为 {', '.join(BODIES)} 之一")
    if task.deadline <= now:
        return Done("bad_deadline", "办理期限应在现在之后。")
    category = nlp.CATEGORIES.get(task.category)
    if category is None or not task.text.strip():
        return Done("bad_task", "请写明要办的事（和一个已知的类别）。")
    async with sessions() as session:
        proposal, after = await moving(session, ref, "assign", actor)
        community_id, scope, scope_id = await repo.where_is(session, proposal)
        grid_id = scope_id if scope == "grid" else None
        if grid_id is None and proposal.proposer and (home := await repo.home_of(session, proposal.proposer)):
            grid_id = home[2]  # grid work goes to the proposer's grid
        place = dispatch.Place(grid_id, proposal.household_id)
        staff = await dispatch.members(session, (task.body,), grid_id)
        where = await dispatch.where(session, place)
        client = await _client(session, proposal, actor)
        vote_id = (await session.execute(select(Vote.id).where(Vote.proposal_id == proposal.id, Vote.status == "final")
                                         .order_by(Vote.finalised_at.desc()).limit(1))).scalar_one_or_none()
    response_hours = dispatch.time_limits(category, None, time_limits or {})[0]
    resolve_hours = (task.deadline - now).total_seconds() / 3600
    ticket_id = await ids.next()
    number = ticket_number(ticket_id)
    text = T.task_text(proposal.title, task.text.strip())
    plan = dispatch.Plan(task.body)
    unit = move(proposal, after, now)
    unit.add(Ticket, id=ticket_id, number=number, openid=client, text=text[:1000], category=category.code,
             confidence=1.0, keywords="", intent="task", emergency=None, created_at=now, updated_at=now,
             **dispatch.ticket_fields(plan, place, now, (min(response_hours, resolve_hours), resolve_hours)))
    unit.add(TicketEvent, ticket_id=ticket_id, at=now, actor=actor.label[:64], action="created",
             note=f"议题 编号 {proposal.number}")
    unit.add(TicketEvent, ticket_id=ticket_id, at=now, actor="system", action="dispatched", note=task.body)
    for row in dispatch.party_rows(ticket_id, plan):
        unit.add(TicketParty, **row)
    unit.add(DeliberationTask, ticket_id=ticket_id, proposal_id=proposal.id, vote_id=vote_id)
    event(unit, proposal.id, actor.label, "task_created",
          f"编号 {number} 交{texts.ROUTE_NAMES.get(task.body, task.body)}，{task.deadline:%Y-%m-%d %H:%M} UTC 前办完",
          now, vote_id)
    dispatch.notify_new_ticket(unit, staff, task.body, number=number, category_name=category.name, text=text,
                               where=where, response_hours=min(response_hours, resolve_hours), households=1,
                               emergency=None, now=now,
                               about=dispatch.ticket_subject(ticket_id, number, "dispatched"))
    return Done("created", f"已派出任务，编号：{number}", unit, number)


async def _voters(session, proposal_id: int) -> list[str]:
    """Who voted in the matter's final vote (whose unit voted), to be asked for a rating."""
    vote = (await session.execute(select(Vote).where(Vote.proposal_id == proposal_id, Vote.status == "final")
                                  .order_by(Vote.finalised_at.desc()).limit(1))).scalar_one_or_none()
    return await vote_repo.eligible_openids(session, vote, voted=True) if vote else []


async def complete(sessions: async_sessionmaker, *, ref: str | int, actor: Actor | None, now: datetime) -> Done:
    """The tasks are done (the committee says so, or the tasks job sees every task resolved): the voters are
    asked to rate the outcome."""
    async with sessions() as session:
        proposal, after = await moving(session, ref, "complete", actor or "system")
        voters = await _voters(session, proposal.id)
    unit = move(proposal, after, now)
    event(unit, proposal.id, actor.label if actor else "system", "completed", f"请{len(voters)}人评价", now)
    for openid in voters:
        notify(unit, openid, T.rate_request(proposal.number, proposal.title), now)
    return Done("completed", f"已办完，请投票的居民评价，编号：{proposal.number}", unit, proposal.number)


async def rate_outcome(sessions: async_sessionmaker, *, ref: str | int, openid: str, rating: int,
                       now: datetime) -> Done:
    """评价 编号 1/2/3: once per person who voted in the decision."""
    if rating not in T.RATING_NAMES:
        return Done("bad_rating", "请回复 1 满意、2 基本满意 或 3 不满意。")
    async with sessions() as session:
        proposal = await repo.find_proposal(session, ref)
        if proposal is None:
            return Done("not_found", "没有这个议题编号，请核对。")
        if not rules.PROPOSALS.allowed(proposal.status, "rate", "resident"):
            return Done("not_now", "这个议题现在还不能评价。")
        if openid not in await _voters(session, proposal.id):
            return Done("not_voter", "只有参加了表决的居民可以评价。")
        if await session.get(OutcomeRating, (proposal.id, openid)) is not None:
            return Done("already", "您已经评价过了，谢谢！")
    unit = Unit()
    unit.add(OutcomeRating, proposal_id=proposal.id, openid=openid, rating=rating, at=now)
    event(unit, proposal.id, openid, "rated", T.RATING_NAMES[rating], now)
    return Done("rated", f"谢谢您的评价：{T.RATING_NAMES[rating]}\n编号：{proposal.number}", unit, proposal.number)


async def close_evaluation(sessions: async_sessionmaker, *, ref: str | int, actor: Actor, now: datetime) -> Done:
    async with sessions() as session:
        proposal, after = await moving(session, ref, "close", actor)
        ratings = await repo.ratings_of(session, proposal.id)
    unit = move(proposal, after, now)
    summary = "，".join(f"{name} {ratings.get(k, 0)}" for k, name in T.RATING_NAMES.items())
    event(unit, proposal.id, actor.label, "evaluated", summary, now)
    return Done("evaluated", f"评价结束：{summary}", unit, proposal.number)


def jobs(engine: AsyncEngine, *, every_s: float = 300) -> list[Job]:
    """Proposals whose tasks are all done move on to 民事民评 by themselves."""
    sessions = sessionmaker(engine)
    return [("deliberation_tasks_done", every_s, lambda now: tasks_done(sessions, now))]


async def tasks_done(sessions: async_sessionmaker, now: datetime) -> int:
    async with sessions() as session:
        doing = (await session.execute(select(Proposal.id).where(Proposal.status == "doing"))).scalars().all()
        ready = [p for p in doing if (tasks := await repo.tasks_of(session, p)) and all(t.status in DONE for t in tasks)]
    moved = 0
    for proposal_id in ready:
        try:
            await commit(sessions, (await complete(sessions, ref=proposal_id, actor=None, now=now)).unit)
            moved += 1
        except Conflict:  # another process moved it first
            continue
    return moved


def scheduled(engine, settings) -> list:
    """This capability's jobs for the one scheduler (handlers/router.py)."""
    return jobs(engine)
