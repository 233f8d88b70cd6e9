"""民事民决: opening a vote, casting and replacing ballots, the close, the objection window (公示期), the final
result; participation while it runs; the bulletin after it. Counting is handlers.tally's.

Writes go through a storage.writer.Unit the caller commits (the webhook with its inbound record, or
storage.commit.commit on the command line), except the close and the finalisation, which read and write in
one transaction of their own. Races are settled by the database:
- one ballot row per voting unit (its primary key; a later cast replaces it in place, see
  storage.votes.ballot_statement);
- every ballot's unit carries a guard on its voter's roll row, which the close clears in the same
  transaction that counts: a ballot racing the close either commits first and is counted, or is refused.
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from handlers import deliberation_rules as rules
from handlers import deliberation_texts as T
from handlers import tally
from handlers.actors import COMMITTEE_ROLES, Actor
from handlers.deliberation_settings import community_order
from handlers.followup import Job
from handlers.notify import notify
from storage import votes as repo
from storage.accounts import CODE_ALPHABET, staff_of_roles
from storage.commit import write_in
from storage.db import sessionmaker
from storage.ids import ticket_number
from storage.models import (Ballot, BallotRecord, BudgetProject, Convention, DeliberationEvent, Objection, Owner,
                            Proposal, Vote, VoteHolder, VotePart, VoteVoter)
from storage.owners import holdings
from storage.writer import Unit

MAX_OPTIONS = 9  # answered with one digit
DEFAULT_DAYS = 7


class VoteError(ValueError):
    """A vote cannot be opened or changed as asked; the message says why (shown to the committee)."""


# ---- opening -----------------------------------------------------------------------------------------------------
@dataclass
class VoteSpec:
    community: str  # community code
    title: str
    rule: str
    options: list[str]
    scope: str = "community"
    scope_ref: str | None = None  # grid code or building name
    unit: str | None = None  # owners (art. 278 only), household (default otherwise), resident
    closes_at: datetime | None = None  # default: DEFAULT_DAYS after opening
    advisory: bool = False
    secret: bool = False
    quorum: str = ""  # simple and budget, e.g. "1/2"
    approval: str = ""  # simple, e.g. ">1/2"
    budget: Decimal | None = None
    projects: list[tuple[str, Decimal]] = field(default_factory=list)  # budget: (title, cost)
    convention: str = ""  # a 微公约 this vote adopts when it passes
    proposal_id: int | None = None  # the matter; None: the committee raises one with the vote's title
    objection_days: int | None = None


@dataclass
class Opened:
    vote_id: int
    number: str
    proposal_id: int
    voters: int
    unregistered: int  # flats of the scope nobody in the register holds (counted in totals, cannot vote)
    notified: int
    unit: Unit


def _check(spec: VoteSpec, now: datetime) -> tuple[str, list[str], datetime]:
    if spec.rule not in tally.RULES:
        raise VoteError(f"规则应为 {', '.join(tally.RULES)} 之一")
    try:
        tally.rule(spec.rule, spec.quorum or None, spec.approval or None)
    except ValueError as exc:
        raise VoteError(str(exc)) from None
    art278 = spec.rule in tally.AREA_RULES
    unit = spec.unit or ("owners" if art278 else "household")
    if unit not in repo.UNITS:
        raise VoteError(f"--unit 应为 {', '.join(repo.UNITS)} 之一")
    if art278 and unit != "owners":
        raise VoteError("民法典第二百七十八条的表决只由业主名册里的业主参加（--unit owners）")
    if spec.scope not in repo.SCOPES:
        raise VoteError(f"--scope 应为 {', '.join(repo.SCOPES)} 之一")
    if spec.rule == "budget":
        if not spec.projects or spec.budget is None or spec.budget <= 0:
            raise VoteError("资金表决需要可用资金（--budget）和至少一个项目")
        options = [title for title, _ in spec.projects]
    else:
        options = [o.strip() for o in spec.options if o.strip()]
        if not 2 <= len(options) <= MAX_OPTIONS:
            raise VoteError(f"选项应有 2 到 {MAX_OPTIONS} 个")
        if art278 and options[0] != "同意":
            raise VoteError("第二百七十八条表决的第 1 个选项应为“同意”")
    if len(options) > MAX_OPTIONS:
        raise VoteError(f"最多 {MAX_OPTIONS} 个项目")
    closes_at = spec.closes_at or now + timedelta(days=DEFAULT_DAYS)
    if closes_at <= now:
        raise VoteError("截止时间应在现在之后")
    if not spec.title.strip():
        raise VoteError("表决需要标题")
    return unit, options, closes_at


async def build_roll(session: AsyncSession, community_id: int, scope: str, scope_id: int | None,
                     unit: str) -> tuple[list[dict], list[tuple[int, str]], int]:
    """(parts, holders, unregistered flats) of a new vote, as the register and bindings stand now.

    owners: art. 9 voters (tally.persons), each named "o<its first flat's id>"; a flat nobody in the register
    holds still counts in the totals, as a voter of its own ("u<id>") nobody can vote for (the law counts all
    exclusive parts). household: one voter per flat. resident: one voter per person bound to a flat of the
    scope (a resident whose binding is confirmed, or an owner who bound their code), without area."""
    flats = await repo.scope_households(session, community_id, scope, scope_id)
    if unit == "household":
        return [dict(part=f"h{h}", voter=f"h{h}", household_id=h, building_id=b, area=a) for h, b, a in flats], [], 0
    if unit == "resident":
        building = {h: b for h, b, _ in flats}
        people = {}
        for openid, h in await repo.bound_people(session, list(building)):
            people.setdefault(openid, h)
        return [dict(part=f"r{o}", voter=f"r{o}", household_id=h, building_id=building[h], area=Decimal(0))
                for o, h in sorted(people.items())], [], 0
    where = {h: (b, a) for h, b, a in flats}
    voter_of: dict[int, str] = {}
    holders: list[tuple[int, str]] = []
    for owners, group in tally.persons(await holdings(session, list(where))).items():
        voter = f"o{min(group)}"
        voter_of.update({h: voter for h in group})
        holders += [(o, voter) for o in sorted(owners)]
    parts, unregistered = [], 0
    for h, (b, a) in where.items():
        if h not in voter_of:
            voter_of[h], unregistered = f"u{h}", unregistered + 1
        parts.append(dict(part=f"h{h}", voter=voter_of[h], household_id=h, building_id=b, area=a))
    return parts, holders, unregistered


async def open_vote(sessions: async_sessionmaker, ids, spec: VoteSpec, *, actor: Actor, now: datetime) -> Opened:
    """Prepare a new vote: its roll fixed now, its proposal moved to voting (or raised by the committee), and
    the opening notice to everyone who can vote. Raises VoteError with the reason."""
    if not actor.committee:
        raise VoteError("只有社区（居委会、业委会）可以发起表决")
    unit_kind, options, closes_at = _check(spec, now)
    async with sessions() as session:
        community = await repo.community_by_code(session, spec.community)
        if community is None:
            raise VoteError(f"没有社区 {spec.community}")
        try:
            scope_id = await repo.scope_id(session, community.id, spec.scope, spec.scope_ref)
        except ValueError as exc:
            raise VoteError(str(exc)) from None
        proposal = await session.get(Proposal, spec.proposal_id) if spec.proposal_id is not None else None
        if spec.proposal_id is not None and (proposal is None or not rules.PROPOSALS.allowed(
                proposal.status, "open_vote", "committee")):
            raise VoteError("这个议题现在不能表决（须先受理）" if proposal else "没有这个议题")
        parts, holders, unregistered = await build_roll(session, community.id, spec.scope, scope_id, unit_kind)
        order = await community_order(session, community.id)
    if not parts:
        raise VoteError("这个范围里没有可以投票的人（请先导入户表、业主名册，或让居民绑定房屋）")
    vote_id = await ids.next()
    number = ticket_number(vote_id)
    unit = Unit()
    if proposal is None:
        proposal_id = await ids.next()
        unit.add(Proposal, id=proposal_id, number=ticket_number(proposal_id), title=spec.title[:200], text="",
                 source="committee", status="voting", community_id=community.id, scope=spec.scope, scope_id=scope_id,
                 created_at=now, updated_at=now, reason="")
        unit.add(DeliberationEvent, proposal_id=proposal_id, at=now, actor=actor.label, action="raised", note="")
    else:
        proposal_id = proposal.id
        unit.guards.append(update(Proposal).where(Proposal.id == proposal.id, Proposal.status == proposal.status)
                           .values(status="voting", updated_at=now))
    unit.add(Vote, id=vote_id, number=number, proposal_id=proposal_id, community_id=community.id,
             title=spec.title[:200], options=json.dumps(options, ensure_ascii=False), scope=spec.scope,
             scope_id=scope_id, unit=unit_kind, rule=spec.rule, quorum=spec.quorum, approval=spec.approval,
             budget=spec.budget, secret=spec.secret, advisory=spec.advisory, convention=spec.convention,
             status="open", opened_at=now, closes_at=closes_at,
             objection_days=spec.objection_days if spec.objection_days is not None else order.objection_days,
             created_by=actor.label)
    for voter in dict.fromkeys(p["voter"] for p in parts):
        unit.add(VoteVoter, vote_id=vote_id, voter=voter, open=True, voted_at=None)
    for p in parts:
        unit.add(VotePart, vote_id=vote_id, **p)
    for owner_id, voter in holders:
        unit.add(VoteHolder, vote_id=vote_id, owner_id=owner_id, voter=voter)
    for position, (title, cost) in enumerate(spec.projects if spec.rule == "budget" else [], 1):
        unit.add(BudgetProject, vote_id=vote_id, position=position, title=title[:200], cost=cost)
    how = f"{spec.rule}，{ {'owners': '业主', 'household': '每户', 'resident': '每位居民'}[unit_kind]}一票"
    unit.add(DeliberationEvent, proposal_id=proposal_id, vote_id=vote_id, at=now, actor=actor.label,
             action="vote_opened", note=f"编号 {number}：{how}" + ("，征询" if spec.advisory else "")
             + ("，不记名" if spec.secret else ""))
    voters = set(dict.fromkeys(p["voter"] for p in parts))
    openids = await _openids_for(sessions, unit_kind, parts, holders)
    text = T.vote_opened(number, spec.title, options, closes_at, secret=spec.secret, advisory=spec.advisory,
                         budget=str(spec.budget) if spec.rule == "budget" else None)
    for openid in openids:
        notify(unit, openid, text, now)
    return Opened(vote_id, number, proposal_id, len(voters), unregistered, len(openids), unit)


async def _openids_for(sessions: async_sessionmaker, unit_kind: str, parts: list[dict],
                       holders: list[tuple[int, str]]) -> list[str]:
    """Everyone who can vote on a roll not yet stored (the opening notice)."""
    if unit_kind == "resident":
        return [p["voter"][1:] for p in parts]
    async with sessions() as session:
        if unit_kind == "owners":
            owner_ids = sorted({o for o, _ in holders})
            found: set[str] = set()
            for i in range(0, len(owner_ids), 1000):
                found |= set((await session.execute(select(Owner.openid).where(
                    Owner.id.in_(owner_ids[i:i + 1000]), Owner.openid.is_not(None)))).scalars())
            return sorted(found)
        people = await repo.bound_people(session, [p["household_id"] for p in parts])
    return sorted({openid for openid, _ in people})


# ---- casting ------------------------------------------------------------------------------------------------------
@dataclass
class Cast:
    outcome: str  # cast, no_vote, closed, not_eligible, bad_choice
    reply: str = ""
    receipts: tuple[str, ...] = ()
    voters: tuple[str, ...] = ()  # the voting units the ballot was cast for
    replaced: bool = False
    unit: Unit | None = None


def new_receipt() -> str:
    """Ten random characters: drawn, not derived from anything about the voter, so a receipt alone names nobody."""
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))
    return f"{code[:5]}-{code[5:]}"


async def cast_ballot(sessions: async_sessionmaker, *, vote_ref: str | int, openid: str, choice: int | None = None,
                      picks: Sequence[int] = (), now: datetime) -> Cast:
    """表决: a voter's ballot (or a replacement of theirs) for every voting unit they cast for."""
    async with sessions() as session:
        vote = await repo.find_vote(session, vote_ref)
        if vote is None:
            return Cast("no_vote", "没有这个表决编号，请核对。")
        voters = await repo.units_of(session, vote, openid)
        replaced = bool(voters) and (await session.execute(select(func.count()).select_from(Ballot).where(
            Ballot.vote_id == vote.id, Ballot.voter.in_(voters)))).scalar_one() > 0
        costs = [p.cost for p in await repo.projects(session, vote.id)] if vote.rule == "budget" else []
    return _ballots(vote, voters, choice, tuple(picks), costs, replaced, now, channel="wechat",
                    cast_by="" if vote.secret else openid, entered_by="")


def _ballots(vote: Vote, voters: list[str], choice: int | None, picks: tuple[int, ...], costs: list[Decimal],
             replaced: bool, now: datetime, *, channel: str, cast_by: str, entered_by: str) -> Cast:
    if vote.status != "open" or now >= vote.closes_at:
        return Cast("closed", T.BALLOT_CLOSED)
    if not voters:
        return Cast("not_eligible", T.NOT_ON_ROLL)
    options = repo.options_of(vote)
    if vote.rule == "budget":
        if tally.picks_problem(picks, costs, vote.budget) is not None:
            return Cast("bad_choice", f"所选项目不对，或合计超过可用资金 {vote.budget} 元。")
        choice, chose = 0, ("、".join(f"{p} {options[p - 1]}" for p in picks) or "都不选")
    else:
        if choice is None or not 1 <= choice <= len(options):
            return Cast("bad_choice", T.BAD_CHOICE)
        chose = f"{choice} {options[choice - 1]}"
    unit = Unit()
    receipts = []
    for voter in voters:
        receipt = new_receipt()
        receipts.append(receipt)
        row = dict(vote_id=vote.id, voter=voter, choice=choice, picks=repo.picks_text(picks), receipt=receipt,
                   cast_at=now, channel=channel)
        unit.guards.append(update(VoteVoter).where(VoteVoter.vote_id == vote.id, VoteVoter.voter == voter,
                                                   VoteVoter.open.is_(True)).values(voted_at=now))
        unit.updates.append(repo.ballot_statement(row))
        unit.add(BallotRecord, **row, cast_by=cast_by, entered_by=entered_by)
    reply = T.ballot_receipt(vote.number, vote.title, chose, receipts, vote.closes_at, replaced)
    return Cast("cast", reply, tuple(receipts), tuple(voters), replaced, unit)


async def paper_ballot(sessions: async_sessionmaker, *, vote_ref: str | int, choice: int | None = None,
                       picks: Sequence[int] = (), owner: str | None = None, household: str | None = None,
                       by: str, actor: Actor, now: datetime) -> Cast:
    """A paper ballot (纸质票) entered by committee staff for an owner (register owner_id) or a household (its
    code), on the vote's timeline with who entered it; it replaces or is replaced like any other ballot."""
    if not actor.committee:
        return Cast("not_allowed", "只有社区工作人员可以录入纸质票。")
    async with sessions() as session:
        vote = await repo.find_vote(session, vote_ref)
        if vote is None:
            return Cast("no_vote", "没有这个表决编号，请核对。")
        voters = (await repo.units_of_owner(session, vote, owner) if owner else
                  await repo.unit_of_household(session, vote, household or ""))
        replaced = bool(voters) and (await session.execute(select(func.count()).select_from(Ballot).where(
            Ballot.vote_id == vote.id, Ballot.voter.in_(voters)))).scalar_one() > 0
        costs = [p.cost for p in await repo.projects(session, vote.id)] if vote.rule == "budget" else []
    cast = _ballots(vote, voters, choice, tuple(picks), costs, replaced, now, channel="paper", cast_by="",
                    entered_by=by[:64])
    if cast.unit is not None:
        whom = f"业主 {owner}" if owner else f"户号 {household}"
        shown = "" if vote.secret else f"，选 {choice if vote.rule != 'budget' else repo.picks_text(picks)}"
        cast.unit.add(DeliberationEvent, proposal_id=vote.proposal_id, vote_id=vote.id, at=now, actor=by[:64],
                      action="paper_ballot", note=f"{by} 录入{whom}的纸质票{shown}（{actor.label}）")
    return cast


# ---- the close, the objection window, the final result ---------------------------------------------------------------
async def _vote(session: AsyncSession, vote_ref: str | int) -> Vote:
    vote = await repo.find_vote(session, vote_ref)
    if vote is None:
        raise VoteError("没有这个表决")
    return vote


async def result_of(session: AsyncSession, vote: Vote) -> tally.Result:
    """The tally of the vote's counted ballots over its roll (read in the caller's transaction)."""
    the_rule = tally.rule(vote.rule, vote.quorum or None, vote.approval or None)
    costs = [p.cost for p in await repo.projects(session, vote.id)] if vote.rule == "budget" else []
    parts = [tally.Part(v, a, b or "") for v, a, b in await repo.roll_parts(session, vote.id)]
    ballots = [tally.Ballot(v, c, at, r, repo.picks_of(p)) for v, c, at, r, p in
               await repo.counted_ballots(session, vote.id)]
    return tally.tally(the_rule, len(repo.options_of(vote)), parts, ballots, budget=vote.budget, costs=costs)


async def close_vote(sessions: async_sessionmaker, vote_ref: str | int, *, now: datetime,
                     actor: Actor | None = None) -> dict:
    """Close a vote (at its time, or early by the committee), count it, and publish the preliminary result
    with its objection window; everyone who could vote is told. Returns the result document."""
    who = actor.label if actor else "system"
    if actor is not None and not actor.committee:
        raise VoteError("只有社区可以结束表决")
    async with sessions() as session, session.begin():
        vote = await _vote(session, vote_ref)
        # The first statement writes: the close holds the vote row (and on SQLite the database) from here on.
        closed = await session.execute(update(Vote).where(Vote.id == vote.id, Vote.status == "open").values(
            status=rules.VOTES.next_status("open", "close", "system"), closed_at=now))
        if closed.rowcount != 1:
            raise VoteError("这个表决已经结束了")
        # Every roll row is taken: a ballot still in flight has committed (and is counted below), or its
        # guard finds its row closed and it is refused.
        await session.execute(update(VoteVoter).where(VoteVoter.vote_id == vote.id).values(open=False))
        result = await result_of(session, vote)
        doc = tally.result_json(result, repo.options_of(vote))
        until = now + timedelta(days=vote.objection_days)
        await session.execute(update(Vote).where(Vote.id == vote.id).values(
            status=rules.VOTES.next_status("closed", "publish", "system"), result=json.dumps(doc, ensure_ascii=False),
            objection_until=until))
        unit = Unit()
        unit.add(DeliberationEvent, proposal_id=vote.proposal_id, vote_id=vote.id, at=now, actor=who,
                 action="vote_closed", note=_summary(doc))
        unit.add(DeliberationEvent, proposal_id=vote.proposal_id, vote_id=vote.id, at=now, actor=who,
                 action="vote_publicised", note=f"公示到 {until:%Y-%m-%d %H:%M} UTC")
        text = T.result_notice(vote.number, vote.title, doc, until, advisory=vote.advisory)
        for openid in await repo.eligible_openids(session, vote):
            notify(unit, openid, text, now)
        await write_in(session, unit)
    return await result_document(sessions, vote.id)


def _summary(doc: dict) -> str:
    verdict = "通过" if doc["passed"] else "未通过"
    if doc["rule"] == "budget":
        verdict = "资助项目 " + (",".join(map(str, doc["funded"])) or "无")
    return (f"{verdict}；参与 {doc['participating_headcount']}/{doc['total_headcount']}，面积 "
            f"{doc['participating_area']}/{doc['total_area']}；同意 {doc['approving_headcount']}，"
            f"{doc['approving_area']}")


async def finalise_vote(sessions: async_sessionmaker, vote_ref: str | int, *, now: datetime,
                        actor: Actor | None = None) -> str:
    """After the objection window, with every objection answered, the result is final: the matter is decided
    or rejected, and a convention it adopts is adopted. Returns final, waiting or unanswered."""
    who = actor.label if actor else "system"
    async with sessions() as session, session.begin():
        vote = await repo.find_vote(session, vote_ref)
        if vote is None or vote.status != "publicised":
            raise VoteError("这个表决不在公示期")
        unanswered = (await session.execute(select(func.count()).select_from(Objection).where(
            Objection.vote_id == vote.id, Objection.answer.is_(None)))).scalar_one()
        if unanswered:
            return "unanswered"
        if not rules.may_finalise(now, vote.objection_until, unanswered):
            return "waiting"
        moved = await session.execute(update(Vote).where(Vote.id == vote.id, Vote.status == "publicised")
                                      .values(status="final", finalised_at=now))
        if moved.rowcount != 1:
            return "final"  # another process got there first
        doc = json.loads(vote.result)
        passed = bool(doc["passed"])
        await session.execute(update(Proposal).where(Proposal.id == vote.proposal_id, Proposal.status == "voting")
                              .values(status="decided" if passed else "rejected", updated_at=now))
        unit = Unit()
        unit.add(DeliberationEvent, proposal_id=vote.proposal_id, vote_id=vote.id, at=now, actor=who,
                 action="vote_final", note=_summary(doc))
        if passed and vote.convention and not vote.advisory:
            unit.add(Convention, community_id=vote.community_id, proposal_id=vote.proposal_id, vote_id=vote.id,
                     title=vote.title, text=vote.convention, adopted_at=now)
            unit.add(DeliberationEvent, proposal_id=vote.proposal_id, vote_id=vote.id, at=now, actor=who,
                     action="convention_adopted", note=vote.title)
        proposer = (await session.execute(select(Proposal.proposer).where(Proposal.id == vote.proposal_id))
                    ).scalar_one_or_none()
        if proposer:
            notify(unit, proposer, T.vote_final(vote.number, vote.title, passed), now)
        await write_in(session, unit)
    return "final"


async def annul_vote(sessions: async_sessionmaker, vote_ref: str | int, *, reason: str, actor: Actor,
                     now: datetime) -> Unit:
    """During the objection window the committee may annul a vote (an objection upheld): the matter goes back
    to deliberation and everyone who could vote is told why."""
    if not actor.committee:
        raise VoteError("只有社区可以宣布表决作废")
    if not reason.strip():
        raise VoteError("请写明作废的原因")
    async with sessions() as session:
        vote = await repo.find_vote(session, vote_ref)
        if vote is None or not rules.VOTES.allowed(vote.status, "annul", "committee"):
            raise VoteError("只有公示期内的表决可以作废")
        openids = await repo.eligible_openids(session, vote)
    unit = Unit()
    unit.guards.append(update(Vote).where(Vote.id == vote.id, Vote.status == "publicised")
                       .values(status="annulled", finalised_at=now))
    unit.updates.append(update(Proposal).where(Proposal.id == vote.proposal_id, Proposal.status == "voting")
                        .values(status="deliberating", updated_at=now))
    unit.add(DeliberationEvent, proposal_id=vote.proposal_id, vote_id=vote.id, at=now, actor=actor.label,
             action="vote_annulled", note=reason)
    for openid in openids:
        notify(unit, openid, T.vote_annulled(vote.number, vote.title, reason), now)
    return unit


@dataclass
class Objected:
    outcome: str  # recorded, no_vote, not_now, not_eligible, empty
    reply: str
    unit: Unit | None = None


async def object_to(sessions: async_sessionmaker, *, vote_ref: str | int, openid: str, text: str,
                    now: datetime) -> Objected:
    """异议: a voter objects to a published result within its window; the committee is told."""
    text = text.strip()
    async with sessions() as session:
        vote = await repo.find_vote(session, vote_ref)
        if vote is None:
            return Objected("no_vote", "没有这个表决编号，请核对。")
        if vote.status != "publicised" or vote.objection_until is None or now >= vote.objection_until:
            return Objected("not_now", "现在不在这个表决的公示期内。")
        if not await repo.units_of(session, vote, openid):
            return Objected("not_eligible", T.NOT_ON_ROLL)
        committee = await staff_of_roles(session, set(COMMITTEE_ROLES))
    if not text:
        return Objected("empty", f"请写明异议：回复“异议 {vote.number} 内容”。")
    unit = Unit()
    unit.add(Objection, vote_id=vote.id, openid=openid, text=text[:1000], at=now)
    unit.add(DeliberationEvent, proposal_id=vote.proposal_id, vote_id=vote.id, at=now, actor=openid,
             action="objection", note=text[:1000])
    for staff_openid in dict.fromkeys(s.openid for s in committee):
        notify(unit, staff_openid, T.objection_notice(vote.number, vote.title, text[:200]), now)
    return Objected("recorded", T.objection_received(vote.number), unit)


async def answer_objection(sessions: async_sessionmaker, objection_id: int, *, answer: str, actor: Actor,
                           now: datetime) -> Unit:
    if not actor.committee:
        raise VoteError("只有社区可以答复异议")
    if not answer.strip():
        raise VoteError("答复不能是空的")
    async with sessions() as session:
        objection = await session.get(Objection, objection_id)
        vote = await session.get(Vote, objection.vote_id) if objection else None
    if objection is None or vote is None:
        raise VoteError("没有这条异议")
    unit = Unit()
    unit.guards.append(update(Objection).where(Objection.id == objection_id, Objection.answer.is_(None))
                       .values(answer=answer, answered_by=actor.label, answered_at=now))
    unit.add(DeliberationEvent, proposal_id=vote.proposal_id, vote_id=vote.id, at=now, actor=actor.label,
             action="objection_answered", note=answer)
    notify(unit, objection.openid, T.objection_answered(vote.number, answer), now)
    return unit


# ---- views ----------------------------------------------------------------------------------------------------------
async def result_document(sessions: async_sessionmaker, vote_ref: str | int) -> dict:
    """What `linli vote result --json` prints: after the close the stored result; while the vote runs only
    participation (counts, approvals and the outcome stay None: nobody sees how a running vote stands)."""
    async with sessions() as session:
        vote = await _vote(session, vote_ref)
        head = {"id": vote.id, "number": vote.number, "title": vote.title, "rule": vote.rule, "unit": vote.unit,
                "advisory": vote.advisory, "secret": vote.secret, "status": vote.status,
                "closed": vote.status != "open", "closes_at": vote.closes_at.isoformat(),
                "objection_until": vote.objection_until.isoformat() if vote.objection_until else None}
        if vote.result is not None:
            return {**head, **json.loads(vote.result)}
        the_rule = tally.rule(vote.rule, vote.quorum or None, vote.approval or None)
        parts = [tally.Part(v, a, b or "") for v, a, b in await repo.roll_parts(session, vote.id)]
        whole, _ = tally.participation(the_rule, parts, await repo.voted_units(session, vote.id))
    return {**head, "options": repo.options_of(vote), "ballots": whole.voted_headcount, "counts": None,
            "total_area": str(whole.total_area), "total_headcount": whole.total_headcount,
            "participating_area": str(whole.voted_area), "participating_headcount": whole.voted_headcount,
            "approving_area": None, "approving_headcount": None, "quorum_met": whole.met, "passed": None}


async def bulletin(sessions: async_sessionmaker, vote_ref: str | int) -> dict:
    """The counted ballots with their receipts, only after the close (receipts would let a voter prove how
    they voted while it still runs; see docs/deliberation.md). A secret vote's bulletin names nobody."""
    async with sessions() as session:
        vote = await _vote(session, vote_ref)
        if not rules.VOTES.allowed(vote.status, "see_bulletin", "resident"):
            raise VoteError("表决结束后才公布选票清单")
        return {"id": vote.id, "number": vote.number, "secret": vote.secret,
                "ballots": await repo.bulletin_rows(session, vote)}


@dataclass
class ParticipationView:
    number: str
    title: str
    whole: tally.Participation | None  # None for someone who sees only some buildings
    buildings: dict[str, tally.Participation]
    not_voted: dict[str, list[str]]  # building -> flats whose unit has not voted


async def participation_view(sessions: async_sessionmaker, vote_ref: str | int, actor: Actor) -> ParticipationView:
    """For staff and building captains while a vote runs: who has voted (never how), and how far each building
    is from the 2/3 thresholds by area and headcount. The committee sees every building; a grid worker the
    buildings of their grid; a 楼栋长 their own buildings."""
    async with sessions() as session:
        vote = await _vote(session, vote_ref)
        if actor.committee:
            allowed = None
        else:
            allowed = set(actor.buildings) | await repo.grid_buildings(session, set(actor.grid_ids))
            if not allowed:
                raise rules.Forbidden(vote.status, "see_participation", "resident")
        the_rule = tally.rule(vote.rule, vote.quorum or None, vote.approval or None)
        rows = (await session.execute(select(VotePart.voter, VotePart.area, VotePart.building_id)
                                      .where(VotePart.vote_id == vote.id))).all()
        names = await repo.building_names(session, {b for _, _, b in rows if b is not None})
        visible = [tally.Part(v, a, names.get(b, "")) for v, a, b in rows if allowed is None or b in allowed]
        whole, buildings = tally.participation(the_rule, visible, await repo.voted_units(session, vote.id))
        not_voted = await repo.flats_not_voted(session, vote.id, allowed)
    return ParticipationView(vote.number, vote.title, whole if allowed is None else None, buildings, not_voted)


# ---- scheduled jobs ---------------------------------------------------------------------------------------------------
def jobs(engine: AsyncEngine, *, every_s: float = 60) -> list[Job]:
    """The votes' jobs as bot.scheduler.Scheduler takes them: (name, interval_s, job(now) -> int)."""
    sessions = sessionmaker(engine)
    return [
        ("votes_remind", every_s, lambda now: remind_due(sessions, now)),
        ("votes_close", every_s, lambda now: close_due(sessions, now)),
        ("votes_finalise", every_s * 5, lambda now: finalise_due(sessions, now)),
    ]


async def remind_due(sessions: async_sessionmaker, now: datetime) -> int:
    """Once per vote, remind everyone who can still vote and has not, some time before the close."""
    reminded = 0
    async with sessions() as session:
        due = (await session.execute(select(Vote).where(Vote.status == "open", Vote.reminded_at.is_(None),
                                                        Vote.closes_at > now))).scalars().all()
    for vote in due:
        async with sessions() as session, session.begin():
            order = await community_order(session, vote.community_id)
            if now < rules.remind_at(vote.opened_at, vote.closes_at, order):
                continue
            moved = await session.execute(update(Vote).where(Vote.id == vote.id, Vote.reminded_at.is_(None),
                                                             Vote.status == "open").values(reminded_at=now))
            if moved.rowcount != 1:
                continue
            unit = Unit()
            for openid in await repo.eligible_openids(session, vote, voted=False):
                notify(unit, openid, T.vote_reminder(vote.number, vote.title, vote.closes_at), now)
            unit.add(DeliberationEvent, proposal_id=vote.proposal_id, vote_id=vote.id, at=now, actor="system",
                     action="vote_reminded", note=f"{len(unit.inserts)} 人")
            await write_in(session, unit)
        reminded += 1
    return reminded


async def close_due(sessions: async_sessionmaker, now: datetime) -> int:
    async with sessions() as session:
        due = (await session.execute(select(Vote.id).where(Vote.status == "open", Vote.closes_at <= now))).scalars().all()
    closed = 0
    for vote_id in due:
        try:
            await close_vote(sessions, vote_id, now=now)
            closed += 1
        except VoteError:
            continue  # another process closed it
    return closed


async def finalise_due(sessions: async_sessionmaker, now: datetime) -> int:
    async with sessions() as session:
        due = (await session.execute(select(Vote.id).where(Vote.status == "publicised",
                                                           Vote.objection_until <= now))).scalars().all()
    done = 0
    for vote_id in due:
        try:
            done += await finalise_vote(sessions, vote_id, now=now) == "final"
        except VoteError:
            continue
    return done


__all__ = ["VoteSpec", "VoteError", "open_vote", "cast_ballot", "paper_ballot", "close_vote", "finalise_vote",
           "annul_vote", "object_to", "answer_objection", "result_document", "bulletin", "participation_view",
           "jobs"]


def scheduled(engine, settings) -> list:
    """This capability's jobs for the one scheduler (handlers/router.py)."""
    return jobs(engine)
