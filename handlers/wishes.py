"""Micro-wishes (微心愿) and in-service Party members (在职党员): everything about wishes in one place.

A resident writes a wish; the community (residents' committee members and admins) reviews it, classifies it
and may edit its public text; it goes on the wish wall of the resident's community; a Party member
registered (报到) in that community claims it, alone or as a group others join; they talk through the
account (neither sees the other's number; the resident's phone only after 同意留电话); the member reports
it done with the time it took; the resident confirms (or says 没有完成, which sends it back); hours count.
The rules are in handlers/wish_rules.py, the texts in handlers/wish_texts.py, the reads in storage/wishes.py.

Every use case is a plain async function: who acts (an openid, or an Actor), on what, `now`; it reads
through the session it is given and returns a WishResult whose `unit` holds all its writes (the wish, its
timeline entry, the notices). The caller commits the unit: the chat with the inbound message, the CLI and
tests with `commit`. A unit with a guard (a conditional UPDATE on the very state the action moves) fails as
a whole when someone else got there first; the actor then gets `conflict_reply`. Scheduled jobs: `jobs`.

The chat (`router`, section "the chat"): the commands, menu click and dialogues that call these use cases,
a picture right after a new wish or a 圆梦, and the question before words the classifier reads as a wish
are filed (docs/wishes.md, "In the chat").
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from handlers import dispatch, tickets
from handlers import wish_rules as rules
from handlers import wish_texts as T
from handlers.notify import Subject, mask_phone, notify
from handlers.routing import QUESTION_KEY, Dialogue, Question, Router, Turn, dump_question
from handlers.types import Outcome
from handlers.wish_rules import CLAIMER, KINDS, NEW, OPEN, OWNER, Actor, Limits, NotAllowed
from storage import wishes as repo
from storage.accounts import staff_roles
from storage.community import household_place
from storage.ids import IdAllocator, ticket_number
from storage.models import PartyMember, Resident, Staff, Wish, WishClaimer, WishEvent, WishPhoto
from storage.writer import Conflict, Unit, Writer

REVIEWER_ROLES = ("residents_committee", "admin")  # who reviews wishes (a route tuple, as the directory takes)
CLI_ACTOR = Actor("cli", reviewer=True)  # whoever runs `linli wish review` holds the database: a reviewer
KIND_WORDS = {"物质帮扶": "material", "物质": "material", "便民服务": "service", "便民": "service",
              "公益服务": "public", "公益": "public", **{k: k for k in KINDS}}
_W = Wish.__table__


@dataclass
class WishResult:
    """What a use case decided. `code` names it for code (submitted, limit, claimed, taken, need_hours, ...),
    `reply` is what the actor reads; `unit` (None: nothing to write) must be committed before the reply is
    sent; `conflict_reply` replaces the reply when the unit's guard lost a race."""

    code: str
    reply: str
    unit: Unit | None = None
    conflict_reply: str | None = None
    number: str | None = None
    detail: dict = field(default_factory=dict)  # e.g. the story of a fulfilment still missing its hours

    def outcome(self) -> Outcome:
        """The chat handler's answer (handlers.types.Outcome)."""
        return Outcome(self.reply, self.unit, conflict_reply=self.conflict_reply)


async def commit(writer: Writer, result: WishResult) -> WishResult:
    """Write the result's unit (for the CLI, jobs' callers and tests; the webhook commits with the inbound
    message). A lost race turns into the result the actor gets instead: code "conflict"."""
    if result.unit is None:
        return result
    try:
        await writer.write(result.unit)
    except Conflict:
        return WishResult("conflict", result.conflict_reply or T.changed(result.number or ""),
                          number=result.number)
    return result


def limits_from_env(env: Mapping[str, str] | None = None) -> Limits:
    """Limits with overrides from LINLI_WISH_* variables (docs/wishes.md); a bad value raises ValueError
    naming the variable."""
    env = os.environ if env is None else env
    names = {"LINLI_WISH_MAX_OPEN": ("max_open", int), "LINLI_WISH_REVIEW_H": ("review_hours", float),
             "LINLI_WISH_STALE_DAYS": ("stale_days", float), "LINLI_WISH_RELEASE_DAYS": ("release_days", float),
             "LINLI_WISH_CONFIRM_DAYS": ("confirm_days", float), "LINLI_WISH_MAX_GROUP": ("max_group", int)}
    values = {}
    for name, (attr, parse) in names.items():
        if (raw := env.get(name)) is None or not raw.strip():
            continue
        try:
            value = parse(raw)
        except ValueError:
            raise ValueError(f"{name} must be a number, not {raw!r}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise ValueError(f"{name} must be more than 0, not {raw!r}")
        values[attr] = value
    return Limits(**values)


# -- who is acting ------------------------------------------------------------------------------------------------
async def actor_of(session: AsyncSession, who: str | Actor) -> Actor:
    """The person's standing for wishes: reviewer, Party member, and where they registered."""
    if isinstance(who, Actor):
        return who
    roles = {r.role for r in await staff_roles(session, who)}
    member = "party_member" in roles
    registered = await repo.party_member(session, who) if member else None
    return Actor(who, reviewer=not roles.isdisjoint(REVIEWER_ROLES), party_member=member,
                 community_id=registered.community_id if registered else None)


@dataclass
class _Wish:
    """A wish as one actor meets it."""

    wish: Wish
    claimers: list[WishClaimer]
    roles: frozenset[str]

    @property
    def number(self) -> str:
        return self.wish.number

    def claimer_openids(self) -> list[str]:
        return [c.openid for c in self.claimers]

    def about(self, status: str | None = None) -> Subject:
        """What a notice about this wish is about, with its status once the change is made."""
        return _about(self.wish.id, self.wish.number, status or self.wish.status)


def _about(wish_id: int, number: str, status: str) -> Subject:
    """A notice's subject: template messages show the wish's number and its status in a word or two."""
    return Subject("wish", wish_id, number, T.STATUS_WORDS[status])


async def _load(session: AsyncSession, actor: Actor, ref: str | Wish) -> _Wish | WishResult:
    """The wish and what the actor is to it; a wish that is none of their business is "not found" (so
    nobody learns what other residents wished for, or another community's wall). `ref` as the CLI takes it
    (repo.wish_by_ref), or the wish itself (the chat looks wishes up by their number only)."""
    if isinstance(ref, Wish):
        wish = ref
    else:
        try:
            wish = await repo.wish_by_ref(session, ref)
        except repo.AmbiguousRef:
            wish = None
    if wish is None:
        return WishResult("not_found", T.not_found(ref))
    return _as_met(actor, wish, await repo.claimers(session, wish))


def _as_met(actor: Actor, wish, claimers: list) -> _Wish | WishResult:
    """`wish` (a Wish, or a row of its table) and its current claimers, as this actor meets them."""
    roles = rules.roles_of(actor, wish.openid, wish.community_id, [c.openid for c in claimers])
    if roles == {rules.RESIDENT}:
        return WishResult("not_found", T.not_found(wish.number))
    return _Wish(wish, claimers, roles)


def _refused(w: _Wish, action: str) -> WishResult | None:
    """None when the actor may take the action now; else the answer that says why not."""
    try:
        rules.next_status(w.wish.status, action, w.roles)
    except NotAllowed as exc:
        if exc.reason == "role":
            return WishResult("not_allowed", T.not_yours(w.number), number=w.number)
        return WishResult("not_now", T.cannot_now(w.number, w.wish.status), number=w.number)
    return None


def _guard(w: _Wish, **values):
    """The wish changes only if it is still in the status (and claim) the actor saw."""
    return update(Wish).where(Wish.id == w.wish.id, Wish.status == w.wish.status,
                              Wish.claim_round == w.wish.claim_round).values(**values)


def _event(unit: Unit, wish_id: int, now: datetime, actor: str, action: str, note: str = "") -> None:
    unit.add(WishEvent, wish_id=wish_id, at=now, actor=actor, action=action, note=note[:500])


_STAGE_RESET = {"reminded": False, "escalation_level": 0}  # a new stage gets its own reminder and escalation


async def _staff(session: AsyncSession, routes: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys(s.openid for s in await dispatch.members(session, routes, None)))


async def _reviewers(session: AsyncSession) -> list[str]:
    return await _staff(session, REVIEWER_ROLES)


async def _committee(session: AsyncSession) -> list[str]:
    """Who hears of disputes and released claims: the residents' committee, else the admins."""
    return await _staff(session, ("residents_committee",)) or await _staff(session, ("admin",))


async def _heads(session: AsyncSession) -> list[str]:
    return await _staff(session, ("residents_committee_head",)) or await _staff(session, ("admin",))


async def _title(session: AsyncSession, openid: str) -> str:
    return T.member_title((await repo.member_names(session, [openid])).get(openid, ""))


# -- residents ----------------------------------------------------------------------------------------------------
async def submit(session: AsyncSession, ids: IdAllocator, who: str | Actor, text: str, now: datetime,
                 limits: Limits = Limits()) -> WishResult:
    """微心愿 内容: a new wish from a resident bound to a household; the receipt carries 编号：<number>."""
    openid = who.openid if isinstance(who, Actor) else who  # anyone may wish: no roles to read
    home, mine = await session.run_sync(lambda s: repo.wisher(s.connection(), openid, OPEN))
    return await new_wish(ids, openid, text, now, limits, home, mine, await _reviewers(session))


async def new_wish(ids: IdAllocator, openid: str, text: str, now: datetime, limits: Limits, home: repo.Home | None,
                   open_numbers: list[str], reviewers: list[str]) -> WishResult:
    """`submit` once its reads are done: the resident's home and open wishes (repo.wisher), the reviewers to
    tell. The chat reads them on the hot path's lean connection and the staff directory it keeps anyway."""
    text = text.strip()[:500]
    if not text:
        return WishResult("empty", T.ASK_WISH)
    if home is None:
        return WishResult("unbound", T.NEED_HOME)
    if not rules.may_open_another(len(open_numbers), limits):
        return WishResult("limit", T.too_many(limits.max_open, open_numbers))
    wish_id = await ids.next()
    number = ticket_number(wish_id)
    due = rules.review_due(now, limits)
    unit = Unit()
    unit.add(Wish, id=wish_id, number=number, openid=openid, community_id=home.community_id,
             household_id=home.household_id, building_id=home.building_id, text=text, public_text=text, kind=None,
             status=rules.next_status(NEW, "submit", {OWNER}), created_at=now, updated_at=now, review_due=due,
             reject_reason="", claim_round=0, group_claim=False, claimer_count=0, reminded=False,
             escalation_level=0, story="", shared_phone="")
    _event(unit, wish_id, now, openid, "submitted")
    about = _about(wish_id, number, "submitted")
    for reviewer in reviewers:
        notify(unit, reviewer, T.new_wish_notice(number, text, home.address, due), now, about=about)
    return WishResult("submitted", T.receipt(number, limits.review_hours), unit, number=number)


async def my_wishes(session: AsyncSession, who: str | Actor) -> WishResult:
    """我的心愿: the resident's latest wishes and where each stands."""
    actor = await actor_of(session, who)
    wishes = await repo.resident_wishes(session, actor.openid)
    return WishResult("list", T.wish_list([(w.number, w.text, w.status, w.created_at) for w in wishes]),
                      detail={"numbers": [w.number for w in wishes]})


async def withdraw(session: AsyncSession, who: str | Actor, ref: str, now: datetime) -> WishResult:
    """撤回 编号: the resident takes back a wish nobody has claimed yet."""
    w = await _load(session, await actor_of(session, who), ref)
    if isinstance(w, WishResult):
        return w
    if refused := _refused(w, "withdraw"):
        return refused
    unit = Unit()
    unit.guards.append(_guard(w, status="withdrawn", updated_at=now, closed_at=now))
    _event(unit, w.wish.id, now, w.wish.openid, "withdrawn")
    return WishResult("withdrawn", T.withdrawn(w.number), unit, T.withdraw_too_late(w.number), w.number)


async def share_phone(session: AsyncSession, who: str | Actor, now: datetime, ref: str | Wish | None = None,
                      phone: str | None = None) -> WishResult:
    """同意留电话 [编号] [手机号]: the resident lets the claimers of a claimed wish have their phone number."""
    actor = await actor_of(session, who)
    if ref is None:
        claimed = [w for w in await repo.resident_wishes(session, actor.openid, limit=100)
                   if rules.allowed(w.status, "share_phone", {OWNER})]
        if not claimed:
            return WishResult("none", T.NO_CLAIMED_WISH)
        if len(claimed) > 1:
            return WishResult("which", T.which_wish([w.number for w in claimed]))
        ref = claimed[0]
    w = await _load(session, actor, ref)
    if isinstance(w, WishResult):
        return w
    if refused := _refused(w, "share_phone"):
        return refused
    if phone is None:
        resident = await session.get(Resident, actor.openid)
        phone = resident.phone if resident else ""
    phone = re.sub(r"[\s\-]", "", phone or "")
    if not re.fullmatch(r"\+?\d{7,15}", phone):
        return WishResult("need_phone", T.ASK_PHONE, number=w.number)
    unit = Unit()
    unit.guards.append(_guard(w, shared_phone=phone, phone_shared_at=now, updated_at=now))
    _event(unit, w.wish.id, now, actor.openid, "phone_shared", mask_phone(phone))
    for openid in w.claimer_openids():
        notify(unit, openid, T.phone_for_member(w.number, phone), now, about=w.about())
    return WishResult("shared", T.phone_shared(w.number), unit, T.changed(w.number), w.number)


async def confirm(session: AsyncSession, who: str | Actor, ref: str, now: datetime) -> WishResult:
    """确认 编号: the wish's own resident says it is fulfilled; it closes and its hours count."""
    w = await _load(session, await actor_of(session, who), ref)
    if isinstance(w, WishResult):
        return w
    if refused := _refused(w, "confirm"):
        return refused
    unit = Unit()
    unit.guards.append(_guard(w, status="closed", close_reason="confirmed", closed_at=now, updated_at=now,
                              **_STAGE_RESET))
    _event(unit, w.wish.id, now, w.wish.openid, "confirmed")
    for claimer in w.claimers:
        notify(unit, claimer.openid, T.member_confirmed(w.number, claimer.minutes), now, about=w.about("closed"))
    return WishResult("confirmed", T.confirmed_reply(w.number), unit, T.changed(w.number), w.number)


async def dispute(session: AsyncSession, who: str | Actor, ref: str, reason: str, now: datetime) -> WishResult:
    """没有完成 编号 [原因]: back to the claimers (their reported time is dropped), the committee told."""
    w = await _load(session, await actor_of(session, who), ref)
    if isinstance(w, WishResult):
        return w
    if refused := _refused(w, "dispute"):
        return refused
    reason = reason.strip()[:200]
    unit = Unit()
    unit.guards.append(_guard(w, status=rules.next_status("fulfilled", "dispute", {OWNER}), fulfilled_at=None,
                              minutes=None, progress_at=now, updated_at=now, **_STAGE_RESET))
    unit.updates.append(update(WishClaimer).where(WishClaimer.wish_id == w.wish.id,
                                                  WishClaimer.round == w.wish.claim_round).values(minutes=None))
    _event(unit, w.wish.id, now, w.wish.openid, "disputed", reason)
    about = w.about("claimed")
    for openid in w.claimer_openids():
        notify(unit, openid, T.member_disputed(w.number, reason), now, about=about)
    for openid in await _committee(session):
        notify(unit, openid, T.committee_disputed(w.number, w.wish.public_text, reason), now, about=about)
    return WishResult("disputed", T.disputed_reply(w.number), unit, T.changed(w.number), w.number)


# -- reviewers ----------------------------------------------------------------------------------------------------
def kind_code(word: str | None) -> str | None:
    """material/service/public from 物质帮扶/便民服务/公益服务 (or the codes); None for anything else."""
    return KIND_WORDS.get((word or "").strip())


async def pending(session: AsyncSession, who: str | Actor) -> WishResult:
    """待审核: the wishes waiting for review, oldest first."""
    actor = await actor_of(session, who)
    if not actor.reviewer:
        return WishResult("not_reviewer", T.NOT_REVIEWER)
    items = await repo.pending_reviews(session)
    return WishResult("list", T.pending_list([(w.number, w.text, where, w.review_due) for w, where in items]),
                      detail={"numbers": [w.number for w, _ in items]})


async def review(session: AsyncSession, who: str | Actor, ref: str, now: datetime, *, approve: bool,
                 reason: str = "", kind: str | None = None, public_text: str | None = None) -> WishResult:
    """审核 编号 通过 | 不通过 原因: onto the wall (classified: kind material/service/public, default the one set
    before, else service) or rejected with a reason the resident reads. `public_text` replaces what the wall
    shows."""
    actor = await actor_of(session, who)
    if not actor.reviewer:
        return WishResult("not_reviewer", T.NOT_REVIEWER)
    w = await _load(session, actor, ref)
    if isinstance(w, WishResult):
        return w
    if kind is not None and kind not in KINDS:
        return WishResult("bad_kind", T.UNKNOWN_KIND, number=w.number)
    reason = reason.strip()[:200]
    if not approve and not reason:
        return WishResult("need_reason", T.NEED_REASON, number=w.number)
    if refused := _refused(w, "approve" if approve else "reject"):
        return refused
    kind = kind or w.wish.kind or rules.DEFAULT_KIND
    text = (public_text or "").strip()[:500] or w.wish.public_text
    unit = Unit()
    common = dict(reviewed_at=now, reviewed_by=actor.openid, kind=kind, public_text=text, updated_at=now,
                  **_STAGE_RESET)
    if approve:
        unit.guards.append(_guard(w, status="approved", approved_at=now, **common))
        _event(unit, w.wish.id, now, actor.openid, "approved", T.kind_name(kind))
        notify(unit, w.wish.openid, T.resident_approved(w.number, kind, text), now, about=w.about("approved"))
    else:
        unit.guards.append(_guard(w, status="rejected", reject_reason=reason, closed_at=now, **common))
        _event(unit, w.wish.id, now, actor.openid, "rejected", reason)
        notify(unit, w.wish.openid, T.resident_rejected(w.number, reason), now, about=w.about("rejected"))
    if text != w.wish.public_text:
        _event(unit, w.wish.id, now, actor.openid, "edited", text)
    return WishResult("approved" if approve else "rejected", T.reviewed_reply(w.number, approve, kind), unit,
                      T.changed(w.number), w.number)


async def edit(session: AsyncSession, who: str | Actor, ref: str, now: datetime, *, public_text: str | None = None,
               kind: str | None = None) -> WishResult:
    """A reviewer changes what the wall shows (the public text, the kind) before anyone claims the wish."""
    actor = await actor_of(session, who)
    if not actor.reviewer:
        return WishResult("not_reviewer", T.NOT_REVIEWER)
    w = await _load(session, actor, ref)
    if isinstance(w, WishResult):
        return w
    if kind is not None and kind not in KINDS:
        return WishResult("bad_kind", T.UNKNOWN_KIND, number=w.number)
    if refused := _refused(w, "edit"):
        return refused
    text = (public_text or "").strip()[:500] or w.wish.public_text
    kind = kind or w.wish.kind
    unit = Unit()
    unit.guards.append(_guard(w, public_text=text, kind=kind, updated_at=now))
    _event(unit, w.wish.id, now, actor.openid, "edited", f"{T.kind_name(kind)}｜{text}")
    return WishResult("edited", T.edited_reply(w.number, kind, text), unit, T.changed(w.number),
                      w.number)


# -- Party members ------------------------------------------------------------------------------------------------
_FIELDS = re.compile(r"(单位|特长|技能|时间|社区|姓名)\s*[:：]\s*")


def parse_registration(text: str) -> dict[str, str]:
    """The fields of "报到 单位：区税务局 特长：水电维修 时间：周末 社区：幸福里社区" (a bare "报到 区税务局"
    is the unit): keys unit, skills, time_offered, community, name."""
    text = re.sub(r"^\s*报到\s*", "", text).strip()
    keys = {"单位": "unit", "特长": "skills", "技能": "skills", "时间": "time_offered", "社区": "community",
            "姓名": "name"}
    parts = _FIELDS.split(text)
    fields = {"unit": parts[0].strip(" ，,；;")} if parts[0].strip(" ，,；;") else {}
    for label, value in zip(parts[1::2], parts[2::2]):
        fields[keys[label]] = value.strip(" ，,；;")
    return {k: v for k, v in fields.items() if v}


async def register(session: AsyncSession, who: str | Actor, now: datetime, *, unit: str, skills: str = "",
                   time_offered: str = "", community: str | None = None, name: str | None = None) -> WishResult:
    """报到: a Party member registers with the community where they live (default: that of the household
    they are bound to, or the only one), with their work unit (单位), skills and the time they offer.
    Registering again updates it (in the same community unless another is named)."""
    actor = await actor_of(session, who)
    if not actor.party_member:
        return WishResult("not_member", T.NOT_MEMBER)
    if not unit.strip():
        return WishResult("need_unit", T.ASK_UNIT)
    before = await repo.party_member(session, actor.openid)
    if community:
        community_id = await repo.community_id_by_name(session, community)
    elif before is not None:
        community_id = before.community_id
    else:
        home = await repo.resident_home(session, actor.openid)
        community_id = home.community_id if home else await repo.only_community_id(session)
    if community_id is None:
        return WishResult("which_community", T.WHICH_COMMUNITY)
    if not name:
        staff = (await session.execute(select(Staff.name).where(
            Staff.openid == actor.openid, Staff.role == "party_member"))).scalars().first()
        name = staff or ""
    values = dict(community_id=community_id, name=name.strip()[:50], unit=unit.strip()[:100],
                  skills=skills.strip()[:200], time_offered=time_offered.strip()[:100], updated_at=now)
    writes = Unit()
    if before is None:
        writes.add(PartyMember, openid=actor.openid, registered_at=now, **values)
    else:
        writes.updates.append(update(PartyMember).where(PartyMember.openid == actor.openid).values(**values))
    return WishResult("registered", T.registered(await repo.community_name(session, community_id), values["unit"]),
                      writes)


def _member_refusal(actor: Actor) -> WishResult | None:
    if not actor.party_member:
        return WishResult("not_member", T.NOT_MEMBER)
    if actor.community_id is None:
        return WishResult("not_registered", T.NEED_REGISTER)
    return None


async def wall(session: AsyncSession, who: str | Actor, limits: Limits = Limits(), *, offset: int = 0,
               page: int = 20) -> WishResult:
    """心愿墙: the approved, unclaimed wishes of the member's community, newest first, numbered, with kind and
    building only, `page` at a time from `offset`; on the first page, the group claims they may join.
    `detail`: the page's numbers, and `more` (the next page's offset, or None)."""
    actor = await actor_of(session, who)
    if refused := _member_refusal(actor):
        return refused
    items = await repo.wall(session, actor.community_id, limit=page + 1, offset=offset)
    more = offset + page if len(items) > page else None
    items = items[:page]
    groups = await repo.joinable(session, actor.community_id, limits.max_group) if offset == 0 else []
    text = T.wall(await repo.community_name(session, actor.community_id),
                  [(i.number, i.kind, i.building, i.text) for i in items],
                  [(g.number, g.text, g.members) for g in groups], first=offset + 1, more=more is not None)
    return WishResult("wall", text, detail={"numbers": [i.number for i in items], "more": more})


async def claim(session: AsyncSession, who: str | Actor, ref: str, now: datetime, *, group: bool = False) -> WishResult:
    """认领 编号 [团队]: the first member to claim an approved wish gets it (a guarded update); any other is
    told it is taken. A group claim (团队) lets other members join."""
    actor = await actor_of(session, who)
    if refused := _member_refusal(actor):
        return refused
    w = await _load(session, actor, ref)
    if isinstance(w, WishResult):
        return w
    return decide_claim(actor, w, now, group, await _title(session, actor.openid))


def decide_claim(actor: Actor, w: _Wish, now: datetime, group: bool, title: str) -> WishResult:
    """`claim` once its reads are done (`title`: how the resident is told who claimed it). The chat reads
    what it needs in one lean round trip (repo.acting): a wall opening is a burst of claims."""
    if OWNER in w.roles:
        return WishResult("own", T.own_wish(w.number), number=w.number)
    if CLAIMER in w.roles:
        return WishResult("already_in", T.already_in(w.number), number=w.number)
    if w.wish.status in ("claimed", "fulfilled", "closed"):
        return WishResult("taken", T.already_claimed(w.number), number=w.number)
    if refused := _refused(w, "claim"):
        return refused
    round_ = w.wish.claim_round + 1
    unit = Unit()
    unit.guards.append(_guard(w, status="claimed", claim_round=round_, group_claim=group, claimer_count=1,
                              claimed_at=now, progress_at=now, updated_at=now, **_STAGE_RESET))
    unit.add(WishClaimer, wish_id=w.wish.id, round=round_, openid=actor.openid, lead=True, joined_at=now)
    _event(unit, w.wish.id, now, actor.openid, "claimed", "团队认领" if group else "")
    notify(unit, w.wish.openid, T.resident_claimed(w.number, title, group), now, about=w.about("claimed"))
    return WishResult("claimed", T.claimed_reply(w.number, group), unit, T.already_claimed(w.number), w.number)


async def join(session: AsyncSession, who: str | Actor, ref: str, now: datetime,
               limits: Limits = Limits()) -> WishResult:
    """加入 编号: a member joins a group claim while it has room (the guard counts the members, so a full
    group, a release or a fulfilment in the meantime each refuse the join)."""
    actor = await actor_of(session, who)
    if refused := _member_refusal(actor):
        return refused
    w = await _load(session, actor, ref)
    if isinstance(w, WishResult):
        return w
    if OWNER in w.roles:
        return WishResult("own", T.own_wish(w.number), number=w.number)
    if CLAIMER in w.roles:
        return WishResult("already_in", T.already_in(w.number), number=w.number)
    if w.wish.status == "approved":
        return WishResult("not_claimed", T.not_claimed_yet(w.number), number=w.number)
    if refused := _refused(w, "join"):
        return refused
    if not w.wish.group_claim:
        return WishResult("not_group", T.not_group(w.number), number=w.number)
    if not rules.may_join(True, w.wish.claimer_count, limits):
        return WishResult("full", T.group_full(w.number, limits.max_group), number=w.number)
    unit = Unit()
    unit.guards.append(update(Wish).where(
        Wish.id == w.wish.id, Wish.status == "claimed", Wish.claim_round == w.wish.claim_round,
        Wish.group_claim.is_(True), Wish.claimer_count < limits.max_group)
        .values(claimer_count=Wish.claimer_count + 1, progress_at=now, updated_at=now, reminded=False))
    unit.add(WishClaimer, wish_id=w.wish.id, round=w.wish.claim_round, openid=actor.openid, lead=False, joined_at=now)
    _event(unit, w.wish.id, now, actor.openid, "joined")
    title = await _title(session, actor.openid)
    for openid in w.claimer_openids():
        notify(unit, openid, T.member_joined(w.number, title), now, about=w.about())
    return WishResult("joined", T.joined_reply(w.number), unit, T.join_too_late(w.number), w.number)


async def fulfil(session: AsyncSession, who: str | Actor, ref: str, note: str, now: datetime,
                 minutes: int | None = None) -> WishResult:
    """圆梦 编号 说明 用时2小时: a claimer reports the wish done. The time is the group's total, shared among its
    members in whole minutes (wish_rules.share_minutes). Without a time: code "need_hours" and a question,
    with the story kept in `detail` for the answer."""
    actor = await actor_of(session, who)
    w = await _load(session, actor, ref)
    if isinstance(w, WishResult):
        return w
    if refused := _refused(w, "fulfil"):
        return refused
    parsed, story = rules.parse_duration(note)
    minutes = minutes if minutes is not None else parsed
    if minutes is None or not 0 < minutes <= rules.MAX_MINUTES:
        return WishResult("need_hours", T.ask_hours(w.number), number=w.number, detail={"story": story})
    story = story[:500] or "已完成"
    actor_openid = actor.openid
    shares = rules.share_minutes(minutes, len(w.claimers))
    unit = Unit()
    unit.guards.append(update(Wish).where(
        Wish.id == w.wish.id, Wish.status == "claimed", Wish.claim_round == w.wish.claim_round,
        Wish.claimer_count == len(w.claimers))  # the shares are for exactly these members
        .values(status="fulfilled", fulfilled_at=now, story=story, minutes=minutes, progress_at=now, updated_at=now,
                **_STAGE_RESET))
    for claimer, share in zip(w.claimers, shares):
        unit.updates.append(update(WishClaimer).where(WishClaimer.id == claimer.id).values(minutes=share))
    _event(unit, w.wish.id, now, actor_openid, "fulfilled", f"{story}（用时{T.hours_text(minutes)}）")
    title = await _title(session, actor_openid)
    about = w.about("fulfilled")
    notify(unit, w.wish.openid, T.resident_fulfilled(w.number, title, story), now, about=about)
    for openid in w.claimer_openids():
        if openid != actor_openid:
            notify(unit, openid, T.member_fulfilled(w.number, title, minutes), now, about=about)
    return WishResult("fulfilled", T.fulfilled_reply(w.number, minutes, len(w.claimers)), unit,
                      T.changed(w.number), w.number)


async def attach_photo(session: AsyncSession, who: str | Actor, ref: str, now: datetime, *, media_id: str = "",
                       url: str = "") -> WishResult:
    """A picture for a wish: the resident's own (before it is claimed) or a claimer's proof of the work (kept
    with the story for the committee's publicity)."""
    actor = await actor_of(session, who)
    w = await _load(session, actor, ref)
    if isinstance(w, WishResult):
        return w
    if OWNER in w.roles and w.wish.status in ("submitted", "approved"):
        purpose = "wish"
    elif CLAIMER in w.roles and w.wish.status in ("claimed", "fulfilled", "closed"):
        purpose = "proof"
    else:
        return WishResult("not_now", T.cannot_now(w.number, w.wish.status), number=w.number)
    unit = Unit()
    unit.add(WishPhoto, wish_id=w.wish.id, openid=actor.openid, purpose=purpose, media_id=media_id[:200],
             url=url[:500], created_at=now)
    _event(unit, w.wish.id, now, actor.openid, "photo", purpose)
    return WishResult("photo", T.photo_kept(w.number), unit, number=w.number)


async def relay(session: AsyncSession, who: str | Actor, ref: str, words: str, now: datetime) -> WishResult:
    """回复 编号 内容 between a wish's resident and its claimers, through the account: nobody sees an openid or a
    phone number. A claimer's message counts as progress on the claim."""
    actor = await actor_of(session, who)
    w = await _load(session, actor, ref)
    if isinstance(w, WishResult):
        return w
    words = words.strip()[:500]
    if not words:
        return WishResult("need_words", T.ASK_WORDS.format(number=w.number), number=w.number)
    if refused := _refused(w, "message"):
        return refused
    unit = Unit()
    _event(unit, w.wish.id, now, actor.openid, "message", words)
    about = w.about()
    if OWNER in w.roles:
        for openid in w.claimer_openids():
            notify(unit, openid, T.from_resident(w.number, words), now, about=about)
    else:
        title = await _title(session, actor.openid)
        notify(unit, w.wish.openid, T.from_member(w.number, title, words), now, about=about)
        for openid in w.claimer_openids():
            if openid != actor.openid:
                notify(unit, openid, T.from_teammate(w.number, title, words), now, about=about)
        unit.updates.append(update(Wish).where(Wish.id == w.wish.id, Wish.status == "claimed")
                            .values(progress_at=now, reminded=False))
    return WishResult("sent", T.message_sent(w.number), unit, number=w.number)


async def my_service(session: AsyncSession, who: str | Actor) -> WishResult:
    """我的服务: a member's claims (latest first) and their confirmed hours."""
    actor = await actor_of(session, who)
    if not actor.party_member:
        return WishResult("not_member", T.NOT_MEMBER)
    items = []
    for s in await repo.member_service(session, actor.openid):
        state = "已放回心愿墙" if s.released else T.MEMBER_STATUS_NAMES.get(s.status, s.status)
        share = ""
        if s.minutes and not s.released:
            share = T.hours_text(s.minutes) + ("" if s.status == "closed" else "（待确认）")
        items.append((s.number, s.text, state + ("" if s.lead else "（团队）"), share))
    total = await repo.confirmed_minutes(session, actor.openid)
    return WishResult("service", T.my_service(items, total), detail={"minutes": total})


async def card(session: AsyncSession, who: str | Actor, ref: str | Wish) -> WishResult:
    """One wish as this person may see it (a digit in 我的心愿, the wall or 待审核; 审核 编号): its resident sees
    their own words and the timeline, a member what the wall shows and how to claim it (only while it is on
    the wall or a group they may join), a claimer the public text and the next step, a reviewer the household.
    `detail`: view (owner, claimer, reviewer, member) and status."""
    actor = await actor_of(session, who)
    w = await _load(session, actor, ref)
    if isinstance(w, WishResult):
        return w
    wish = w.wish
    view = next(v for role, v in ((OWNER, "owner"), (CLAIMER, "claimer"), (rules.REVIEWER, "reviewer"),
                                  (rules.MEMBER, "member")) if role in w.roles)
    joinable = wish.status == "claimed" and rules.may_join(wish.group_claim, wish.claimer_count, Limits())
    if view == "member" and wish.status != "approved" and not joinable:
        return WishResult("not_found", T.not_found(wish.number))  # not on the wall (yet, or any more)
    names = await repo.member_names(session, w.claimer_openids())
    claimed_by = "、".join(T.member_title(names.get(o, "")) if view == "owner" else names.get(o, "") or "在职党员"
                          for o in w.claimer_openids())
    history = ""
    if view in ("owner", "reviewer"):
        history = T.timeline([(e.at, e.action) for e in await repo.timeline(session, wish.id)])
    address = ""
    if view == "reviewer":
        place = await household_place(session, wish.household_id)
        address = place.label() if place else ""
    text = wish.text if view in ("owner", "reviewer") else wish.public_text
    reply = T.wish_card(wish.number, wish.status, wish.kind, await repo.building_name(session, wish.building_id),
                        text, view=view, claimed_by=claimed_by, history=history, address=address, joinable=joinable)
    return WishResult("card", reply, number=wish.number, detail={"view": view, "status": wish.status})


# -- the chat -----------------------------------------------------------------------------------------------------
# The commands call the use cases above; the webhook commits their units with the inbound message. Wishes are
# looked up by their number only (as on every receipt), so a ticket's number never reaches a wish.
router = Router("wishes")
asking = router.dialogue(Dialogue("wishes.new", exit_reply=T.WISH_LEFT))  # text (the menu), offer (1 是 2 不是)
lists = router.dialogue(Dialogue("wishes.list", exit_reply="好的。"))  # pick: a digit opens a wish; 下一页
confirming = router.dialogue(Dialogue("wishes.confirm", exit_reply=T.CONFIRM_LEFT,  # done: 1 已完成 2 没有完成
                                      timeout_s=Limits().confirm_days * 86400))
registering = router.dialogue(Dialogue("wishes.register", exit_reply=T.REGISTER_LEFT))  # unit, skills, time, community
fulfilling = router.dialogue(Dialogue("wishes.fulfil", exit_reply=T.HOURS_LEFT))  # hours

WISH_KEY = "WISH"  # menu CLICK key (bot/menu.json)
PHOTO = "wish_photo:"  # + openid: the wish the next picture belongs to (a resident's new wish, a member's 圆梦)
STATE_KEYS = (PHOTO,)  # read ahead with every message (handlers/router.py)
WALL_PAGE = 5  # wishes per page of the wall: a phone screen
DOUBLE_SEND_S = 60  # the same wish again this soon is a double tap, not a second wish
_N = r"(\d{6,12})"  # a wish's number as people type it
_MORE = frozenset({"下一页", "下页", "更多", "继续"})
_YES, _NO = frozenset({"1", "是", "是的", "对", "登记", "好"}), frozenset({"2", "不是", "不", "否", "不用"})
_DONE = frozenset({"1", "已完成", "完成了", "完成", "好了", "办好了"})
_NOT_DONE = frozenset({"2", "没有完成", "没完成", "没有", "没办好"})
_KIND_PREFIXES = sorted(KIND_WORDS, key=len, reverse=True)
_HOW = {"认领": T.HOW_TO_CLAIM, "加入": T.HOW_TO_JOIN, "圆梦": T.HOW_TO_FULFIL, "撤回": T.HOW_TO_WITHDRAW}


@functools.cache
def _env_limits() -> Limits:
    return limits_from_env()


def chat_limits(ctx) -> Limits:
    """The limits the chat applies: the service's (a `wish_limits` on the Context), else the LINLI_WISH_*
    variables, which are what the service's settings read too."""
    return getattr(ctx, "wish_limits", None) or _env_limits()


async def _decide(turn: Turn, use_case, *args, **kw) -> WishResult:
    async with turn.ctx.sessions() as session:
        return await use_case(session, *args, **kw)


async def _on_wish(turn: Turn, number: str, use_case, *args, **kw) -> WishResult | None:
    """`use_case(session, sender, wish, *args)` on the wish with this number; None when no wish has it."""
    async with turn.ctx.sessions() as session:
        wish = await repo.wish_by_number(session, number)
        if wish is None:
            return None
        return await use_case(session, turn.openid, wish, *args, **kw)


_WIDE_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_SPACES = re.compile(r"\s+")


def _written(turn: Turn, m: re.Match) -> re.Match:
    """The command's match on the message as the person wrote it, so that the words kept or passed on keep
    their ，？： (NFKC makes them ASCII in the text commands are matched on); else the match itself."""
    return m.re.match(_SPACES.sub(" ", turn.msg.text.translate(_WIDE_DIGITS)).strip()) or m


def _close(turn: Turn, dialogue: Dialogue) -> None:
    """This reply ends the dialogue, if its question is the open one (a command answered on the way leaves
    another dialogue's question open)."""
    if turn.question is not None and turn.question.dialogue == dialogue.name:
        turn.done()


def _answer(result: WishResult | None, number: str) -> Outcome:
    return Outcome(T.not_found(number)) if result is None else result.outcome()


def _pictures_to(ctx, openid: str, number: str, digest: str = ""):
    """After the commit: the next picture from this person belongs to this wish. The ticket they may have
    opened before stops taking pictures (the latest matter gets them); one opened after sets its flag again."""
    async def remember() -> None:
        value = json.dumps({"n": number, "h": digest, "t": ctx.now().timestamp()})
        await ctx.state.set(PHOTO + openid, value, ctx.attach_window_s)
        await ctx.state.delete(tickets.LAST_TICKET + openid)
    return remember


async def _photo_wish(ctx, openid: str) -> dict | None:
    raw = await ctx.state.get(PHOTO + openid)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


# ---- residents: a new wish -----------------------------------------------------------------------------------
@router.click(WISH_KEY)
@router.command("微心愿", "许愿", "我要许愿", "登记微心愿", "我有心愿")
async def ask_for_wish(turn: Turn) -> Outcome:
    turn.ask(asking.state("text"))
    return Outcome(T.WISH_MENU)


@router.command(pattern=r"^(?:微心愿|许愿)\s*[:：]?\s*(\S.*)$")
async def submit_command(turn: Turn, m: re.Match) -> Outcome:
    return await _submit(turn, _written(turn, m).group(1))


@asking.step("text")
async def wish_in_words(turn: Turn, _data: dict) -> Outcome:
    if turn.words.isdigit() or len(turn.words) < 4:
        return turn.retry(T.WISH_TOO_SHORT, limit=3, give_up=T.WISH_LEFT)
    return await _submit(turn, turn.msg.text.strip() or turn.text)


@router.text
async def maybe_a_wish(turn: Turn) -> Outcome | None:
    """Words the classifier reads as a wish (想请人帮忙换一下灯泡) are asked about before anything is filed.
    Costs nothing more for a complaint: the verdict is computed once, and the tickets' free text needs it."""
    if turn.words.isdigit() or turn.verdict.intent != "wish":
        return None
    turn.ask(asking.state("offer"), {"text": turn.msg.text.strip() or turn.text})
    return Outcome(T.OFFER)


@asking.step("offer")
async def wish_or_problem(turn: Turn, data: dict) -> Outcome | None:
    answer = turn.words
    if answer in _YES:
        return await _submit(turn, data["text"], offered=data)
    if answer in _NO:
        return await _as_problem(turn, data["text"])
    if answer.isdigit() or len(answer) <= 6:
        return turn.retry(T.OFFER_AGAIN, limit=3, give_up=T.OFFER_DROPPED)
    return None  # longer words: a new matter


async def _submit(turn: Turn, text: str, *, offered: dict | None = None) -> Outcome:
    ctx, limits = turn.ctx, chat_limits(turn.ctx)
    digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    last = await _photo_wish(ctx, turn.openid)
    if last and last.get("h") == digest and ctx.now().timestamp() - last.get("t", 0) < DOUBLE_SEND_S:
        _close(turn, asking)
        return Outcome(T.receipt(last["n"], limits.review_hours))  # sent twice: the first one's receipt
    home, mine = await ctx.read(repo.wisher, turn.openid, OPEN)  # the hot path's lean reads, as a ticket's
    reviewers = list(dict.fromkeys(s.openid for s in await ctx.directory.members(REVIEWER_ROLES, None)))
    result = await new_wish(ctx.ticket_ids, turn.openid, text, ctx.now(), limits, home, mine, reviewers)
    if result.code != "submitted":
        if offered is not None and result.code in ("unbound", "limit"):
            turn.ask(asking.state("offer"), offered)  # 2 still files the words as a problem
            return Outcome(T.offer_refused(result.reply))
        return result.outcome()
    _close(turn, asking)
    outcome = result.outcome()
    outcome.after_commit.append(_pictures_to(ctx, turn.openid, result.number, digest))
    return outcome


async def _as_problem(turn: Turn, text: str) -> Outcome:
    """2 不是: the words go on as a problem, as if just sent; the ticket's questions become this turn's."""
    problem = Turn(replace(turn.msg, kind="text", text=text), turn.ctx, None)
    outcome = await tickets.open_ticket(problem)
    asked = problem.asked
    if isinstance(asked, Question):
        turn.ask(asked.name, asked.data, asked.tries)
    else:
        turn.done()
    return outcome


@router.on_media("image")
async def wish_photo(turn: Turn) -> Outcome | None:
    """A picture right after a new wish (the resident's) or a 圆梦 (the proof): that wish's; else None and it
    goes on to the tickets. Read before the tickets' own, so the latest matter gets it."""
    ctx, openid = turn.ctx, turn.openid
    target = await _photo_wish(ctx, openid)
    if target is None or await ctx.state.get(tickets.LAST_TICKET + openid):
        return None
    result = await _on_wish(turn, target["n"], attach_photo, ctx.now(), media_id=turn.msg.media_id,
                            url=turn.msg.pic_url)
    return result.outcome() if result is not None and result.code == "photo" else None


# ---- lists: 我的心愿, 心愿墙, 待审核; a digit opens one ---------------------------------------------------------------
@router.command("我的心愿", "我的微心愿", "心愿进度")
async def my_list(turn: Turn) -> Outcome:
    return _numbered(turn, await _decide(turn, my_wishes, turn.openid))


@router.command("待审核", "审核列表", "待审核心愿")
async def pending_list(turn: Turn) -> Outcome:
    return _numbered(turn, await _decide(turn, pending, turn.openid))


@router.command("心愿墙", "微心愿墙", "认领心愿", "看心愿")
async def show_wall(turn: Turn) -> Outcome:
    return await _wall_page(turn, 0)


async def _wall_page(turn: Turn, offset: int) -> Outcome:
    result = await _decide(turn, wall, turn.openid, chat_limits(turn.ctx), offset=offset, page=WALL_PAGE)
    return _numbered(turn, result, first=offset + 1)


def _numbered(turn: Turn, result: WishResult, first: int = 1) -> Outcome:
    """A list whose digits open its wishes (from `first`); the wall's `下一页` too."""
    numbers = result.detail.get("numbers")
    if numbers:
        turn.ask(lists.state("pick"), {"numbers": numbers, "first": first, "more": result.detail.get("more")})
    else:
        _close(turn, lists)
    return result.outcome()


@lists.step("pick")
async def picked(turn: Turn, data: dict) -> Outcome | None:
    words = turn.words
    if words in _MORE and data.get("more") is not None:
        return await _wall_page(turn, data["more"])
    if not words.isdigit():
        return None
    numbers, first = data["numbers"], data["first"]
    if not first <= int(words) < first + len(numbers):
        return turn.retry(T.pick_again(first, first + len(numbers) - 1), limit=3, give_up="好的。")
    return await _show(turn, numbers[int(words) - first])


async def _show(turn: Turn, number: str) -> Outcome:
    result = await _on_wish(turn, number, card)
    if result is not None and result.detail.get("view") == "owner" and result.detail["status"] == "fulfilled":
        turn.ask(confirming.state("done"), {"number": number})  # its card asks 1 已完成 2 没有完成
    return _answer(result, number)


@router.command(*_HOW)
async def how_to(turn: Turn) -> Outcome:
    return Outcome(_HOW[turn.words])


@router.command(pattern=rf"^撤回\s*(?:心愿)?\s*{_N}$")
async def withdraw_command(turn: Turn, m: re.Match) -> Outcome:
    return _answer(await _on_wish(turn, m.group(1), withdraw, turn.ctx.now()), m.group(1))


# ---- residents: is it done? ----------------------------------------------------------------------------------------
async def ask_confirmation(ctx, openid: str, number: str, limits: Limits) -> None:
    """The fulfilled notice asks 办好了吗 (1 已完成 2 没有完成): from now on that is the resident's open question."""
    question = Question(confirming.state("done"), {"number": number})
    await ctx.state.set(QUESTION_KEY + openid, dump_question(question), limits.confirm_days * 86400)


@router.command(pattern=rf"^确认\s*(?:完成|圆梦)?\s*{_N}$")
async def confirm_command(turn: Turn, m: re.Match) -> Outcome:
    return await _done_or_not(turn, m.group(1), True)


@router.command(pattern=rf"^(?:没有完成|没完成|未完成)\s*{_N}\s*(.*)$")
async def dispute_command(turn: Turn, m: re.Match) -> Outcome:
    m = _written(turn, m)
    return await _done_or_not(turn, m.group(1), False, m.group(2).strip())


@confirming.step("done")
async def done_answer(turn: Turn, data: dict) -> Outcome | None:
    answer = turn.words
    if answer in _DONE or answer in _NOT_DONE:
        return await _done_or_not(turn, data["number"], answer in _DONE)
    if answer.isdigit() or len(answer) <= 4:
        return turn.retry(T.confirm_again(data["number"]), limit=3, give_up=T.CONFIRM_LEFT)
    return None


async def _done_or_not(turn: Turn, number: str, done: bool, reason: str = "") -> Outcome:
    now = turn.ctx.now()
    if done:
        result = await _on_wish(turn, number, confirm, now)
    else:
        result = await _on_wish(turn, number, dispute, reason, now)
    if turn.question is not None and turn.question.data.get("number") == number:
        _close(turn, confirming)  # answered, by the digit or the command
    return _answer(result, number)


# ---- reviewers -----------------------------------------------------------------------------------------------------
def _kind_and_text(rest: str) -> tuple[str | None, str]:
    """"便民服务 想请人换灯泡" -> ("service", "想请人换灯泡"); without a kind word first: (None, rest)."""
    for word in _KIND_PREFIXES:
        if rest.startswith(word):
            return KIND_WORDS[word], rest[len(word):].strip(" ，,：:")
    return None, rest


@router.command(pattern=rf"^审核\s*{_N}\s*(不通过|通过|驳回)?\s*(.*)$")
async def review_command(turn: Turn, m: re.Match) -> Outcome:
    """审核 编号 通过 [类别 [公开内容]] | 审核 编号 不通过 原因; 审核 编号 alone shows it."""
    m = _written(turn, m)
    number, verdict, rest = m.group(1), m.group(2), m.group(3).strip()
    if verdict is None:
        return await _show(turn, number) if not rest else Outcome(T.HOW_TO_REVIEW)
    now = turn.ctx.now()
    if verdict != "通过":
        return _answer(await _on_wish(turn, number, review, now, approve=False, reason=rest), number)
    kind, text = _kind_and_text(rest)
    if kind is None and text:
        return Outcome(T.UNKNOWN_KIND + "\n" + T.HOW_TO_REVIEW)
    result = await _on_wish(turn, number, review, now, approve=True, kind=kind, public_text=text or None)
    return _answer(result, number)


@router.command(pattern=rf"^修改心愿\s*{_N}\s*(.*)$")
async def edit_command(turn: Turn, m: re.Match) -> Outcome:
    """修改心愿 编号 [类别] [公开内容]: what the wall shows."""
    m = _written(turn, m)
    kind, text = _kind_and_text(m.group(2).strip())
    if kind is None and not text:
        return Outcome(T.HOW_TO_EDIT)
    result = await _on_wish(turn, m.group(1), edit, turn.ctx.now(), public_text=text or None, kind=kind)
    return _answer(result, m.group(1))


# ---- Party members -----------------------------------------------------------------------------------------------------
@router.command("报到", "党员报到", "居住地报到")
async def start_registering(turn: Turn) -> Outcome:
    actor = await _decide(turn, actor_of, turn.openid)
    if not actor.party_member:
        return Outcome(T.NOT_MEMBER)
    turn.ask(registering.state("unit"))
    return Outcome(T.ASK_UNIT_STEP)


@router.command(pattern=r"^(?:党员|居住地)?报到\s*[:：]?\s*(\S.*)$")
async def register_in_one_line(turn: Turn, m: re.Match) -> Outcome:
    fields = parse_registration(m.group(1))
    if "unit" not in fields:
        return Outcome(T.ASK_UNIT)
    return await _register(turn, fields)


@registering.step("unit")
async def unit_answer(turn: Turn, _data: dict) -> Outcome | None:
    if (answer := _short_answer(turn)) is None:
        return None
    if answer.isdigit():
        return turn.retry(T.ASK_UNIT_STEP, limit=3, give_up=T.REGISTER_LEFT)
    turn.ask(registering.state("skills"), {"unit": answer})
    return Outcome(T.ASK_SKILLS)


@registering.step("skills")
async def skills_answer(turn: Turn, data: dict) -> Outcome | None:
    if (answer := _short_answer(turn)) is None:
        return None
    turn.ask(registering.state("time"), {**data, "skills": "" if answer in T.NO_SKILLS else answer})
    return Outcome(T.ASK_TIME)


@registering.step("time")
async def time_answer(turn: Turn, data: dict) -> Outcome | None:
    if (answer := _short_answer(turn)) is None:
        return None
    return await _register(turn, {**data, "time_offered": answer})


def _short_answer(turn: Turn) -> str | None:
    """An answer to a 报到 question; None for longer words, which are a new matter, not an answer."""
    return turn.words if len(turn.words) <= 20 else None


@registering.step("community")
async def community_answer(turn: Turn, data: dict) -> Outcome | None:
    if (answer := _short_answer(turn)) is None:
        return None
    return await _register(turn, {**data, "community": answer})


async def _register(turn: Turn, fields: dict) -> Outcome:
    result = await _decide(turn, register, turn.openid, turn.ctx.now(), **fields)
    if result.code == "which_community":  # not bound to a home, and several communities: ask which
        if "community" in fields:
            return turn.retry(T.WHICH_COMMUNITY_STEP, limit=3, give_up=T.REGISTER_LEFT)
        turn.ask(registering.state("community"), fields)
        return Outcome(T.WHICH_COMMUNITY_STEP)
    _close(turn, registering)
    return result.outcome()


@router.command(pattern=rf"^认领\s*{_N}\s*(团队|组队|一起|集体)?$")
async def claim_command(turn: Turn, m: re.Match) -> Outcome:
    number = m.group(1)
    facts = await turn.ctx.read(repo.acting, turn.openid, number)  # a burst at a wall opening: lean reads
    if facts.wish is None:
        return Outcome(T.not_found(number))
    roles = facts.roles
    actor = Actor(turn.openid, reviewer=not roles.isdisjoint(REVIEWER_ROLES), party_member="party_member" in roles,
                  community_id=facts.community_id if "party_member" in roles else None)
    if refused := _member_refusal(actor):
        return refused.outcome()
    w = _as_met(actor, facts.wish, facts.claimers)
    if isinstance(w, WishResult):
        return w.outcome()
    return decide_claim(actor, w, turn.ctx.now(), bool(m.group(2)), T.member_title(facts.name)).outcome()


@router.command(pattern=rf"^加入\s*(?:团队)?\s*{_N}$")
async def join_command(turn: Turn, m: re.Match) -> Outcome:
    result = await _on_wish(turn, m.group(1), join, turn.ctx.now(), chat_limits(turn.ctx))
    return _answer(result, m.group(1))


@router.command(pattern=rf"^圆梦\s*{_N}\s*(.*)$")
async def fulfil_command(turn: Turn, m: re.Match) -> Outcome:
    m = _written(turn, m)
    return await _fulfil(turn, m.group(1), m.group(2).strip(), None)


@fulfilling.step("hours")
async def hours_answer(turn: Turn, data: dict) -> Outcome | None:
    """The time a 圆梦 left out: "2小时", "半小时", or a bare number of hours."""
    words = turn.words
    minutes, _ = rules.parse_duration(words + "小时" if words.replace(".", "", 1).isdigit() else words)
    if minutes is None:
        if len(words) > 12:
            return None  # a new matter
        return turn.retry(T.hours_again(data["number"]), limit=3, give_up=T.HOURS_LEFT)
    return await _fulfil(turn, data["number"], data["story"], minutes)


async def _fulfil(turn: Turn, number: str, note: str, minutes: int | None) -> Outcome:
    ctx = turn.ctx
    async with ctx.sessions() as session:
        wish = await repo.wish_by_number(session, number)
        if wish is None:
            return Outcome(T.not_found(number))
        result = await fulfil(session, turn.openid, wish, note, ctx.now(), minutes)
    if result.code == "need_hours":
        turn.ask(fulfilling.state("hours"), {"number": number, "story": result.detail["story"]})
        return result.outcome()
    if result.code != "fulfilled":
        return result.outcome()
    _close(turn, fulfilling)

    async def ask_the_resident() -> None:
        await ask_confirmation(ctx, wish.openid, number, chat_limits(ctx))

    outcome = result.outcome()
    outcome.after_commit += [_pictures_to(ctx, turn.openid, number), ask_the_resident]
    return outcome


@router.command("我的服务", "服务时长", "我的认领")
async def service_command(turn: Turn) -> Outcome:
    return (await _decide(turn, my_service, turn.openid)).outcome()


# ---- talking through the account -----------------------------------------------------------------------------------------
@router.command(pattern=rf"^回复\s*{_N}\s*(.*)$")
async def relay_command(turn: Turn, m: re.Match) -> Outcome | None:
    """回复 编号 内容 about a wish; None for any other number, which is a ticket's (the staff router's)."""
    m = _written(turn, m)
    result = await _on_wish(turn, m.group(1), relay, m.group(2).strip(), turn.ctx.now())
    return result.outcome() if result is not None else None


@router.command("同意留电话", pattern=r"^同意留电话\s*(.*)$")
async def phone_command(turn: Turn, m: re.Match | None = None) -> Outcome:
    """同意留电话 [编号] [手机号]: a token that is a wish's number names the wish, any other is the phone."""
    ref = phone = None
    async with turn.ctx.sessions() as session:
        for token in re.findall(r"[\d+\-]+", m.group(1) if m else ""):
            if ref is None and (wish := await repo.wish_by_number(session, token)) is not None:
                ref = wish
            else:
                phone = token
        result = await share_phone(session, turn.openid, turn.ctx.now(), ref=ref, phone=phone)
    return result.outcome()


# -- scheduled jobs -----------------------------------------------------------------------------------------------
def jobs(engine: AsyncEngine, limits: Limits = Limits(), every_s: float = 60) -> list:
    """The wish jobs as bot.scheduler.Scheduler takes them: (name, interval_s, job(now) -> int). Each is
    idempotent and safe in several processes: a wish changes only through a conditional UPDATE on the very
    state the job moves, and its notices are written in the same transaction only when that UPDATE won."""
    return [
        ("wish_review", every_s, lambda now: chase_reviews(engine, now, limits)),
        ("wish_claims", every_s * 5, lambda now: chase_claims(engine, now, limits)),
        ("wish_confirmations", every_s * 5, lambda now: chase_confirmations(engine, now, limits)),
    ]


async def chase_reviews(engine: AsyncEngine, now: datetime, limits: Limits) -> int:
    """The review's time limit, as a ticket's: the reviewers are reminded when 20 % of it is left, the
    committee's head (else the admins) told once it has passed (督办)."""
    moved = 0
    for wish in await _candidates(engine, Wish.status == "submitted", Wish.escalation_level == 0):
        stage = rules.review_stage(now, wish.created_at, wish.review_due, limits)
        if stage == "waiting" or (stage == "remind" and wish.reminded):
            continue
        async with AsyncSession(engine) as session, session.begin():
            values = {"reminded": True} | ({"escalation_level": 1} if stage == "escalate" else {})
            if not await _won(session, update(Wish).where(
                    Wish.id == wish.id, Wish.status == "submitted", Wish.escalation_level == 0,
                    Wish.reminded.is_(wish.reminded)).values(**values)):
                continue
            unit = Unit()
            escalate = stage == "escalate"
            text = (T.review_escalation if escalate else T.review_reminder)(wish.number, wish.review_due)
            for openid in await (_heads(session) if escalate else _reviewers(session)):
                notify(unit, openid, text, now, about=_about(wish.id, wish.number, "submitted"))
            action = "escalated" if escalate else "reminded"
            _event(unit, wish.id, now, "system", action, "审核时限")
            await _flush(session, unit)
        moved += 1
    return moved


async def chase_claims(engine: AsyncEngine, now: datetime, limits: Limits) -> int:
    """A claim without progress for stale_days: the claimers are reminded; release_days later the wish goes
    back on the wall (newest again), the claimers, the resident and the committee told."""
    moved = 0
    for wish in await _candidates(engine, Wish.status == "claimed",
                                  Wish.progress_at <= now - timedelta(days=limits.stale_days)):
        stage = rules.claim_stage(now, wish.progress_at, limits)
        if stage == "fresh" or (stage == "remind" and wish.reminded):
            continue
        async with AsyncSession(engine) as session, session.begin():
            same = (Wish.id == wish.id, Wish.status == "claimed", Wish.claim_round == wish.claim_round,
                    Wish.progress_at == wish.progress_at)
            if stage == "release":
                won = await _won(session, update(Wish).where(*same).values(
                    status=rules.next_status("claimed", "release", {rules.SYSTEM}), approved_at=now,
                    claimer_count=0, group_claim=False, claimed_at=None, progress_at=None, updated_at=now,
                    **_STAGE_RESET))
            else:
                won = await _won(session, update(Wish).where(*same, Wish.reminded.is_(False)).values(reminded=True))
            if not won:
                continue
            # Read after the guard, inside its transaction: a member who joined just before is released too.
            claimers = list((await session.execute(select(WishClaimer).where(
                WishClaimer.wish_id == wish.id, WishClaimer.round == wish.claim_round,
                WishClaimer.released_at.is_(None)))).scalars())
            unit = Unit()
            about = _about(wish.id, wish.number, "approved" if stage == "release" else "claimed")
            if stage == "release":
                await session.execute(update(WishClaimer).where(
                    WishClaimer.wish_id == wish.id, WishClaimer.round == wish.claim_round,
                    WishClaimer.released_at.is_(None)).values(released_at=now))
                for c in claimers:
                    notify(unit, c.openid, T.member_released(wish.number), now, about=about)
                notify(unit, wish.openid, T.resident_released(wish.number), now, about=about)
                for openid in await _committee(session):
                    notify(unit, openid, T.committee_released(
                        wish.number, wish.public_text, limits.stale_days + limits.release_days), now, about=about)
                _event(unit, wish.id, now, "system", "released", "认领后没有进展")
            else:
                release_at = wish.progress_at + timedelta(days=limits.stale_days + limits.release_days)
                for c in claimers:
                    notify(unit, c.openid, T.member_stale(wish.number, release_at), now, about=about)
                _event(unit, wish.id, now, "system", "reminded", "认领后没有进展")
            await _flush(session, unit)
        moved += 1
    return moved


async def chase_confirmations(engine: AsyncEngine, now: datetime, limits: Limits) -> int:
    """A fulfilled wish the resident has not answered: reminded halfway through confirm_days, then closed as
    未确认 (close_reason "unconfirmed"); its hours count, as the resident was asked twice and did not say
    没有完成. Like an unrated ticket, it is never counted as the resident's confirmation."""
    moved = 0
    for wish in await _candidates(engine, Wish.status == "fulfilled",
                                  Wish.fulfilled_at <= now - timedelta(days=limits.confirm_days / 2)):
        stage = rules.confirm_stage(now, wish.fulfilled_at, limits)
        if stage == "waiting" or (stage == "remind" and wish.reminded):
            continue
        async with AsyncSession(engine) as session, session.begin():
            same = (Wish.id == wish.id, Wish.status == "fulfilled", Wish.fulfilled_at == wish.fulfilled_at)
            if stage == "expire":
                won = await _won(session, update(Wish).where(*same).values(
                    status=rules.next_status("fulfilled", "expire", {rules.SYSTEM}), close_reason="unconfirmed",
                    closed_at=now, updated_at=now))
            else:
                won = await _won(session, update(Wish).where(*same, Wish.reminded.is_(False)).values(reminded=True))
            if not won:
                continue
            unit = Unit()
            about = _about(wish.id, wish.number, "closed" if stage == "expire" else "fulfilled")
            if stage == "expire":
                notify(unit, wish.openid, T.resident_closed_unconfirmed(wish.number), now, about=about)
                for c in await repo.claimers(session, wish):
                    notify(unit, c.openid, T.member_closed_unconfirmed(wish.number, c.minutes), now, about=about)
                _event(unit, wish.id, now, "system", "expired", "居民未确认")
            else:
                left = wish.fulfilled_at + timedelta(days=limits.confirm_days) - now
                notify(unit, wish.openid, T.resident_confirm_reminder(wish.number, max(1, round(left.days))), now,
                       about=about)
                _event(unit, wish.id, now, "system", "reminded", "等居民确认")
            await _flush(session, unit)
        moved += 1
    return moved


async def _candidates(engine: AsyncEngine, *conditions) -> list:
    async with engine.connect() as conn:
        return list((await conn.execute(select(_W).where(*conditions).order_by(_W.c.id))).all())


async def _won(session: AsyncSession, statement) -> bool:
    return (await session.execute(statement)).rowcount == 1


async def _flush(session: AsyncSession, unit: Unit) -> None:
    """A job's notices and timeline entry, in the transaction of the update that earned them."""
    for table, row in unit.inserts:
        await session.execute(insert(table), [row])


# -- what the CLI and the console show -----------------------------------------------------------------------------
async def wish_detail(session: AsyncSession, ref: str) -> dict | None:
    """Everything about a wish for `linli wish show`: status, claimed_by (the current claim's members'
    names), hours (the confirmed total: counted once the wish is closed), and the timeline."""
    wish = await repo.wish_by_ref(session, ref)
    if wish is None:
        return None
    claimers = await repo.claimers(session, wish)
    names = await repo.member_names(session, [c.openid for c in claimers])
    community = await repo.community_name(session, wish.community_id)
    building = await repo.building_name(session, wish.building_id)
    return {
        "id": wish.id, "number": wish.number, "status": wish.status, "status_name": T.STATUS_NAMES[wish.status],
        "kind": wish.kind, "text": wish.text, "public_text": wish.public_text, "community": community,
        "building": building, "claimed_by": [names.get(c.openid, "") or c.openid[:8] for c in claimers],
        "group": wish.group_claim,
        "hours": rules.hours(wish.minutes or 0) if wish.status == "closed" else 0,
        "reported_hours": rules.hours(wish.minutes) if wish.minutes else None,
        "story": wish.story, "close_reason": wish.close_reason, "reject_reason": wish.reject_reason,
        "created_at": wish.created_at.isoformat(), "review_due": wish.review_due.isoformat(),
        "photos": [{"purpose": p.purpose, "media_id": p.media_id, "url": p.url}
                   for p in await repo.photos(session, wish.id)],
        "events": [{"at": e.at.isoformat(), "actor": e.actor, "action": e.action, "note": e.note}
                   for e in await repo.timeline(session, wish.id)],
    }


# -- the demo community ---------------------------------------------------------------------------------------------
DEMO_ZHAO = "demo-party-zhao"  # 赵党员, the demo's second Party member (bot/demo.py IDENTITIES should name him)
DEMO_MEMBERS = {  # name -> (work unit, skills, time offered)
    "刘党员": ("区税务局", "水电维修", "周末"),
    "赵党员": ("市第一医院", "量血压、健康咨询", "工作日晚上"),
}


async def seed_demo_wishes(engine: AsyncEngine, identities: Mapping[str, str], now: datetime, *,
                           ids: IdAllocator | None = None) -> None:
    """After storage.community.seed_demo: the two Party members registered (报到) in 幸福里社区 with their work
    units, and wishes of 张阿姨 and 李大爷 in every status, made through the use cases themselves (so their
    timelines and notices are real). Idempotent: once the demo residents have wishes, it adds none.
    `ids` should be the service's allocator (ctx.ticket_ids); without it one is made on the same sequence."""
    from storage.community import DEMO_COMMUNITY
    from storage.db import sessionmaker
    from storage.models import Community

    zhang, li = identities.get("张阿姨"), identities.get("李大爷")
    members = {name: identities.get(name, DEMO_ZHAO if name == "赵党员" else None) for name in DEMO_MEMBERS}
    liu, zhao = members["刘党员"], members["赵党员"]
    chen = identities.get("陈主任")
    if not (zhang and li and liu and zhao and chen):
        raise ValueError("seed_demo_wishes needs 张阿姨, 李大爷, 刘党员 and 陈主任 (and 赵党员's openid)")
    sessions = sessionmaker(engine)
    own_ids = ids is None
    ids = ids or IdAllocator(engine, "tickets", start=10000)  # bot.app.FIRST_TICKET_ID: the one number space
    writer = Writer(engine)
    async with sessions() as session, session.begin():
        if not (await session.execute(select(Staff.id).where(Staff.openid == zhao,
                                                             Staff.role == "party_member"))).first():
            session.add(Staff(openid=zhao, role="party_member", grid_id=None, is_head=False, name="赵党员",
                              active=True, created_at=now))
        community = (await session.execute(select(Community.name).where(Community.code == DEMO_COMMUNITY))).scalar_one()
        seeded = (await session.execute(select(Wish.id).where(Wish.openid.in_((zhang, li))).limit(1))).first()

    async def step(use_case, *args, **kw) -> WishResult:
        async with sessions() as session:
            result = await commit(writer, await use_case(session, *args, **kw))
        if result.code in ("conflict", "not_found", "not_allowed", "not_now"):
            raise RuntimeError(f"demo wish step {use_case.__name__} failed: {result.reply}")
        return result

    try:
        for name, (unit, skills, time_offered) in DEMO_MEMBERS.items():
            await step(register, members[name], now, unit=unit, skills=skills, time_offered=time_offered,
                       community=community, name=name)
        if seeded:
            return
        day = timedelta(days=1)

        async def wish(who: str, text: str, days_ago: float) -> str:
            return (await step(submit, ids, who, text, now - days_ago * day)).number

        async def approved(who: str, text: str, days_ago: float, kind: str) -> str:
            number = await wish(who, text, days_ago)
            await step(review, chen, number, now - (days_ago - 0.2) * day, approve=True, kind=kind)
            return number

        done = await approved(zhang, "厨房的灯泡坏了，想请人帮忙换一下", 12, "service")  # closed: a group's work
        await step(claim, liu, done, now - 11 * day, group=True)
        await step(join, zhao, done, now - 11 * day)
        await step(relay, liu, done, "阿姨好，我们周六上午来换灯泡，方便吗？", now - 10.5 * day)
        await step(fulfil, liu, done, "换好了新的节能灯泡，顺便检查了电线 用时1小时", now - 10 * day)
        await step(confirm, zhang, done, now - 9.5 * day)
        waiting = await approved(zhang, "想请人陪我去社区医院量血压", 5, "service")  # fulfilled, to confirm
        await step(claim, zhao, waiting, now - 4 * day)
        await step(fulfil, zhao, waiting, "陪阿姨量了血压，一切正常 用时1.5小时", now - 1 * day)
        gone = await wish(zhang, "想请人帮忙取一下快递", 3)  # withdrawn
        await step(withdraw, zhang, gone, now - 2.9 * day)
        await wish(zhang, "想找人教我用手机和孙子视频通话", 0.1)  # submitted: 待审核
        await approved(li, "眼睛花了，想要一副老花镜", 2, "material")  # approved: on the wall
        fixing = await approved(li, "家里的水龙头一直漏水，想请人修一下", 3, "service")  # claimed
        await step(claim, liu, fixing, now - 2 * day)
        no = await wish(li, "想要一台新电视", 6)  # rejected
        await step(review, chen, no, now - 5 * day, approve=False, reason="微心愿是小而实的需要，这个不在范围内，可以问问居委会别的帮扶")
    finally:
        await writer.stop()
        if own_ids:
            await ids.settled()


def scheduled(engine, settings) -> list:
    """This capability's jobs for the one scheduler (handlers/router.py)."""
    return jobs(engine, settings.wish_limits)
