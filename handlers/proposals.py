"""民事民提 and 民事民议: raising a proposal (议题), co-signing (附议, one household once), the committee's
decision (受理 / 合并 / 不受理), comments under the rules of order, and the view of a matter.

Each use case returns what happened and a storage.writer.Unit for the caller to commit (the webhook with its
inbound record, or storage.commit.commit). Races are the database's to settle:
- one co-signature per household: the co-signatures' primary key;
- the committee is told exactly once at the threshold: every co-sign first takes the proposal's row (a guard),
  then the notice and the move to `candidate` are written only if the count, read inside that transaction,
  has reached the threshold while the proposal is still `cosigning`;
- the day's comment limit: (proposal, person, China day, slot) is unique.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from handlers import deliberation_rules as rules
from handlers import deliberation_texts as T
from handlers.actors import COMMITTEE_ROLES, Actor
from handlers.deliberation_settings import community_order
from handlers.notify import notify
from handlers.texts import local_time
from storage import proposals as repo
from storage.accounts import staff_of_roles
from storage.ids import ticket_number
from storage.models import Comment, Cosignature, DeliberationEvent, Outbox, Proposal
from storage.writer import Unit

MAX_TEXT = 1000
TITLE_CHARS = 30
STATUS_NAMES = {"cosigning": "征集附议", "candidate": "待受理", "accepted": "已受理", "merged": "已合并",
                "declined": "不受理", "withdrawn": "已撤回", "deliberating": "商议中", "voting": "表决中",
                "decided": "已通过", "rejected": "未通过", "doing": "办理中", "evaluating": "评价中",
                "evaluated": "已评价"}


@dataclass
class Done:
    """What a proposal use case did: an outcome word, the reply for the person acting, the writes."""

    outcome: str
    reply: str = ""
    unit: Unit | None = None
    number: str = ""
    supporters: int = 0


def event(unit: Unit, proposal_id: int, actor: str, action: str, note: str, now: datetime, vote_id=None) -> None:
    unit.add(DeliberationEvent, proposal_id=proposal_id, vote_id=vote_id, at=now, actor=actor[:64], action=action,
             note=note)


def insert_if(model, row: dict, condition):
    """INSERT this row only when the condition holds inside the writing transaction (INSERT ... SELECT)."""
    names = list(row)
    return insert(model).from_select(names, select(*(literal(row[n], model.__table__.c[n].type) for n in names))
                                     .where(condition))


def notify_if(unit: Unit, openid: str, text: str, now: datetime, condition) -> None:
    """handlers.notify.notify, written only if the condition holds when the unit commits."""
    unit.updates.append(insert_if(Outbox, dict(openid=openid, text=text, status="pending", attempts=0,
                                               next_attempt_at=now, created_at=now, last_error=""), condition))


async def _committee(sessions: async_sessionmaker) -> list[str]:
    async with sessions() as session:
        return list(dict.fromkeys(s.openid for s in await staff_of_roles(session, set(COMMITTEE_ROLES))))


# ---- 民事民提 -----------------------------------------------------------------------------------------------------------
async def raise_proposal(sessions: async_sessionmaker, ids, *, openid: str, text: str, now: datetime,
                         title: str | None = None, scope: str = "community") -> Done:
    """议题 内容: a bound resident (or owner) raises a matter for their community, building or grid; their
    household is its first supporter."""
    text = " ".join(text.split())
    if not text:
        return Done("empty", "请写上议题内容：回复“议题 想商量的事”。")
    async with sessions() as session:
        home = await repo.home_of(session, openid)
        if home is None:
            return Done("not_bound", T.NOT_BOUND)
        household_id, building_id, grid_id, community_id = home
        scope_id = {"community": None, "grid": grid_id, "building": building_id}[scope]
        probe = Proposal(community_id=community_id, scope=scope, scope_id=scope_id, cluster_id=None)
        threshold = rules.cosign_threshold(await repo.households_in_scope(session, probe),
                                           await community_order(session, community_id))
    proposal_id = await ids.next()
    number = ticket_number(proposal_id)
    title = (title or text)[:TITLE_CHARS]
    reached = threshold <= 1
    unit = Unit()
    unit.add(Proposal, id=proposal_id, number=number, title=title, text=text[:MAX_TEXT], source="resident",
             status="candidate" if reached else rules.initial_status("resident"), community_id=community_id,
             scope=scope, scope_id=scope_id, proposer=openid, household_id=household_id, created_at=now,
             updated_at=now, reason="", reached_at=now if reached else None)
    unit.add(Cosignature, proposal_id=proposal_id, household_id=household_id, openid=openid, at=now)
    event(unit, proposal_id, openid, "raised", text[:MAX_TEXT], now)
    if reached:
        for member in await _committee(sessions):
            notify(unit, member, T.proposal_notice(number, title, 1), now)
    return Done("raised", T.proposal_raised(number, title, threshold), unit, number, 1)


async def cosign(sessions: async_sessionmaker, *, ref: str | int, openid: str, now: datetime) -> Done:
    """附议 编号: one co-signature per household; at the threshold the committee is told, exactly once."""
    async with sessions() as session:
        proposal = await repo.find_proposal(session, ref)
        if proposal is None:
            return Done("not_found", "没有这个议题编号，请核对。")
        if not rules.PROPOSALS.allowed(proposal.status, "cosign", "resident"):
            return Done("closed", T.PROPOSAL_CLOSED)
        home = await repo.home_of(session, openid)
        if home is None:
            return Done("not_bound", T.NOT_BOUND)
        household_id = home[0]
        if not await repo.in_scope(session, proposal, household_id):
            return Done("out_of_scope", "这个议题不是您家所在范围的事，不能附议。")
        if await repo.has_cosigned(session, proposal.id, household_id):
            return Done("already", T.ALREADY_COSIGNED)
        count = await repo.supporters(session, proposal.id)
        community_id = (await repo.where_is(session, proposal))[0]
        threshold = rules.cosign_threshold(await repo.households_in_scope(session, proposal),
                                           await community_order(session, community_id))
    unit = Unit()
    # Taking the row first: concurrent co-signs of one proposal commit one after the other, each counting
    # the others' rows (PostgreSQL re-reads after the lock; SQLite has one writer).
    unit.guards.append(update(Proposal).where(Proposal.id == proposal.id, Proposal.status.in_(("cosigning", "candidate")))
                       .values(updated_at=now))
    unit.add(Cosignature, proposal_id=proposal.id, household_id=household_id, openid=openid, at=now)
    counted = select(func.count()).select_from(Cosignature).where(
        Cosignature.proposal_id == proposal.id).scalar_subquery()
    reached = and_(exists().where(Proposal.id == proposal.id, Proposal.status == "cosigning"), counted >= threshold)
    for member in await _committee(sessions):
        notify_if(unit, member, T.proposal_notice(proposal.number, proposal.title, threshold), now, reached)
    unit.updates.append(insert_if(DeliberationEvent, dict(proposal_id=proposal.id, at=now, actor="system",
                                                          action="reached", note=f"{threshold}户附议"), reached))
    unit.updates.append(update(Proposal).where(Proposal.id == proposal.id, Proposal.status == "cosigning",
                                               counted >= threshold).values(status="candidate", reached_at=now))
    event(unit, proposal.id, openid, "cosigned", "", now)
    return Done("cosigned", T.cosigned(proposal.number, count + 1, threshold), unit, proposal.number, count + 1)


# ---- the committee's decision -------------------------------------------------------------------------------------------
async def moving(session, ref: str | int, action: str, role) -> tuple[Proposal, str]:
    """The proposal and the status `action` takes it to, for this role (a role name, or an Actor, whose role
    follows from the proposer); LookupError when there is no such proposal, NotAllowed / Forbidden when the
    action is not theirs to take now."""
    proposal = await repo.find_proposal(session, ref)
    if proposal is None:
        raise LookupError("没有这个议题")
    role = role.proposal_role(proposal.proposer) if isinstance(role, Actor) else role
    return proposal, rules.PROPOSALS.next_status(proposal.status, action, role)


def move(proposal: Proposal, after: str, now: datetime) -> Unit:
    """A unit whose guard moves the proposal on, only if nobody moved it since it was read."""
    unit = Unit()
    unit.guards.append(update(Proposal).where(Proposal.id == proposal.id, Proposal.status == proposal.status)
                       .values(status=after, updated_at=now))
    return unit


async def _decide(sessions: async_sessionmaker, ref, actor: Actor, action: str, now: datetime):
    async with sessions() as session:
        proposal, after = await moving(session, ref, action, actor)
    return proposal, move(proposal, after, now)


async def accept(sessions: async_sessionmaker, *, ref: str | int, actor: Actor, now: datetime) -> Done:
    """受理. Raises LookupError for no such proposal, deliberation_rules.NotAllowed / Forbidden when it is not
    this person's to do now (so do decline, merge and withdraw)."""
    proposal, unit = await _decide(sessions, ref, actor, "accept", now)
    event(unit, proposal.id, actor.label, "accepted", "", now)
    if proposal.proposer:
        notify(unit, proposal.proposer, T.proposal_accepted(proposal.number, proposal.title), now)
    return Done("accepted", f"已受理，编号：{proposal.number}", unit, proposal.number)


async def decline(sessions: async_sessionmaker, *, ref: str | int, reason: str, actor: Actor, now: datetime) -> Done:
    """不受理, with the reason the proposer is told."""
    if not reason.strip():
        return Done("no_reason", "不受理要写明原因，会告诉提出的居民。")
    proposal, unit = await _decide(sessions, ref, actor, "decline", now)
    unit.updates.append(update(Proposal).where(Proposal.id == proposal.id).values(reason=reason))
    event(unit, proposal.id, actor.label, "declined", reason, now)
    if proposal.proposer:
        notify(unit, proposal.proposer, T.proposal_declined(proposal.number, proposal.title, reason), now)
    return Done("declined", f"已不受理，编号：{proposal.number}", unit, proposal.number)


async def merge(sessions: async_sessionmaker, *, ref: str | int, into: str | int, reason: str, actor: Actor,
                now: datetime) -> Done:
    """合并 a duplicate into another proposal: its supporting households support that one from now on."""
    async with sessions() as session:
        target = await repo.find_proposal(session, into)
    if target is None or target.status in rules.PROPOSALS.final:
        return Done("no_target", "要合并到的议题不存在或已经结束。")
    proposal, unit = await _decide(sessions, ref, actor, "merge", now)
    if proposal.id == target.id:
        return Done("same", "不能合并到自己。")
    unit.updates.append(update(Proposal).where(Proposal.id == proposal.id).values(merged_into=target.id, reason=reason))
    theirs = select(Cosignature.household_id).where(Cosignature.proposal_id == target.id)
    unit.updates.append(insert(Cosignature).from_select(
        ["proposal_id", "household_id", "openid", "at"],
        select(literal(target.id), Cosignature.household_id, Cosignature.openid, Cosignature.at).where(
            Cosignature.proposal_id == proposal.id, Cosignature.household_id.not_in(theirs))))
    event(unit, proposal.id, actor.label, "merged", f"并入 编号 {target.number}。{reason}", now)
    event(unit, target.id, actor.label, "merged_in", f"编号 {proposal.number} 并入", now)
    if proposal.proposer:
        notify(unit, proposal.proposer, T.proposal_merged(proposal.number, target.number, reason), now)
    return Done("merged", f"已合并到 编号 {target.number}", unit, proposal.number)


async def withdraw(sessions: async_sessionmaker, *, ref: str | int, openid: str, now: datetime) -> Done:
    """The proposer takes it back before the committee decides."""
    proposal, unit = await _decide(sessions, ref, Actor(openid), "withdraw", now)
    event(unit, proposal.id, openid, "withdrawn", "", now)
    return Done("withdrawn", f"已撤回，编号：{proposal.number}", unit, proposal.number)


# ---- 民事民议: comments ------------------------------------------------------------------------------------------------
async def comment(sessions: async_sessionmaker, *, ref: str | int, openid: str, text: str, now: datetime,
                  actor: Actor | None = None) -> Done:
    """发言 编号 内容: at most `comments_per_day` per person, matter and China day (committee staff answering
    are not limited), each at most `comment_chars` long."""
    actor = actor or Actor(openid)
    async with sessions() as session:
        proposal = await repo.find_proposal(session, ref)
        if proposal is None:
            return Done("not_found", "没有这个议题编号，请核对。")
        role = actor.proposal_role(proposal.proposer)
        if not rules.PROPOSALS.allowed(proposal.status, "comment", role):
            return Done("closed", T.COMMENT_PROBLEMS["closed"])
        if role != "committee" and await repo.home_of(session, openid) is None:
            return Done("not_bound", T.NOT_BOUND)
        day = rules.china_day(now)
        earlier = await repo.comments_today(session, proposal.id, openid, day)
        order = await community_order(session, (await repo.where_is(session, proposal))[0])
    problem = rules.comment_problem(text, 0 if role == "committee" else earlier, order)
    if problem:
        return Done(problem, T.COMMENT_PROBLEMS[problem].format(chars=order.comment_chars,
                                                                per_day=order.comments_per_day))
    unit = Unit()
    unit.add(Comment, proposal_id=proposal.id, openid=openid, day=day, slot=earlier + 1, text=text.strip(), at=now,
             hidden_reason="")
    return Done("commented", T.comment_saved(proposal.number), unit, proposal.number)


async def hide_comment(sessions: async_sessionmaker, *, comment_id: int, reason: str, actor: Actor,
                       now: datetime) -> Done:
    """Staff hide a comment from the view; its text and the reason stay on the record and the timeline."""
    if not actor.committee:
        return Done("not_allowed", "只有社区工作人员可以隐藏发言。")
    if not reason.strip():
        return Done("no_reason", "隐藏发言要写明原因。")
    async with sessions() as session:
        found = await session.get(Comment, comment_id)
    if found is None:
        return Done("not_found", "没有这条发言。")
    unit = Unit()
    unit.guards.append(update(Comment).where(Comment.id == comment_id, Comment.hidden_at.is_(None)).values(
        hidden_at=now, hidden_by=actor.label[:64], hidden_reason=reason))
    event(unit, found.proposal_id, actor.label, "comment_hidden", f"发言 {comment_id}：{reason}", now)
    return Done("hidden", "已隐藏。", unit)


# ---- what people read ------------------------------------------------------------------------------------------------
async def proposal_view(sessions: async_sessionmaker, ref: str | int, *, comments: int = 5) -> str | None:
    """议题 编号: summary, status, support, the latest comments, meetings, votes and tasks (None: no such)."""
    async with sessions() as session:
        p = await repo.find_proposal(session, ref)
        if p is None:
            return None
        lines = [f"议题：{p.title}", f"编号：{p.number}", f"状态：{STATUS_NAMES.get(p.status, p.status)}"]
        if p.text and p.text != p.title:
            lines.append(p.text[:200])
        if p.status in ("cosigning", "candidate"):
            lines.append(f"支持：{await repo.supporters(session, p.id)}户")
        if p.reason:
            lines.append(f"说明：{p.reason}")
        for m in await repo.meetings_of(session, p.id):
            lines.append(f"议事会 编号 {m.number}：{local_time(m.starts_at)} {m.place}" + ("（有纪要）" if m.minutes else ""))
        for v in await repo.votes_of(session, p.id):
            lines.append(f"表决 编号 {v.number}：{v.title}（{_VOTE_STATUS.get(v.status, v.status)}）")
        for t in await repo.tasks_of(session, p.id):
            lines.append(f"办理 编号 {t.number}：{t.text[:30]}（{_TASK_STATUS.get(t.status, t.status)}）")
        ratings = await repo.ratings_of(session, p.id)
        if ratings:
            lines.append("评价：" + "，".join(f"{T.RATING_NAMES[k]} {ratings.get(k, 0)}" for k in T.RATING_NAMES))
        shown = await repo.latest_comments(session, p.id, comments)
    if shown:
        lines.append("大家的发言：")
        lines += [f"· {c.text}" if c.hidden_at is None else f"· （这条发言已隐藏：{c.hidden_reason}）" for c in shown]
    if p.status in _DISCUSSABLE:
        lines.append(f"回复“发言 {p.number} 内容”说说您的意见。")
    return "\n".join(lines)


_DISCUSSABLE = {s for s in rules.PROPOSAL_STATUSES if rules.PROPOSALS.allowed(s, "comment", "resident")}
_VOTE_STATUS = {"open": "进行中", "closed": "已截止", "publicised": "公示中", "final": "已生效", "annulled": "已作废"}
_TASK_STATUS = {"dispatched": "待签收", "accepted": "办理中", "resolved": "已办结", "reopened": "重新办理",
                "closed": "已完成", "submitted": "待派单"}
