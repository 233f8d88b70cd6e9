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
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from handlers import dispatch
from handlers import wish_rules as rules
from handlers import wish_texts as T
from handlers.notify import mask_phone, notify
from handlers.types import Outcome
from handlers.wish_rules import CLAIMER, KINDS, NEW, OPEN, OWNER, Actor, Limits, NotAllowed
from storage import wishes as repo
from storage.accounts import staff_roles
from storage.ids import IdAllocator, ticket_number
from storage.models import PartyMember, Resident, Staff, Wish, WishClaimer, WishEvent, WishPhoto
from storage.writer import Conflict, Unit, Writer

REVIEWER_ROLES = frozenset({"residents_committee", "admin"})
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
    return Actor(who, reviewer=bool(roles & REVIEWER_ROLES), party_member=member,
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


async def _load(session: AsyncSession, actor: Actor, ref: str) -> _Wish | WishResult:
    """The wish and what the actor is to it; a wish that is none of their business is "not found" (so
    nobody learns what other residents wished for, or another community's wall)."""
    try:
        wish = await repo.wish_by_ref(session, ref)
    except repo.AmbiguousRef:
        wish = None
    if wish is None:
        return WishResult("not_found", T.not_found(ref))
    claimers = await repo.claimers(session, wish)
    roles = rules.roles_of(actor, wish.openid, wish.community_id, [c.openid for c in claimers])
    if roles == {rules.RESIDENT}:
        return WishResult("not_found", T.not_found(ref))
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
    return await _staff(session, ("residents_committee", "admin"))


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
    actor = await actor_of(session, who)
    text = text.strip()[:500]
    if not text:
        return WishResult("empty", T.ASK_WISH)
    home = await repo.resident_home(session, actor.openid)
    if home is None:
        return WishResult("unbound", T.NEED_HOME)
    mine = [w for w in await repo.resident_wishes(session, actor.openid, limit=100) if w.status in OPEN]
    if not rules.may_open_another(len(mine), limits):
        return WishResult("limit", T.too_many(limits.max_open, [w.number for w in mine]))
    wish_id = await ids.next()
    number = ticket_number(wish_id)
    due = rules.review_due(now, limits)
    unit = Unit()
    unit.add(Wish, id=wish_id, number=number, openid=actor.openid, community_id=home.community_id,
             household_id=home.household_id, building_id=home.building_id, text=text, public_text=text, kind=None,
             status=rules.next_status(NEW, "submit", {OWNER}), created_at=now, updated_at=now, review_due=due,
             reject_reason="", claim_round=0, group_claim=False, claimer_count=0, reminded=False,
             escalation_level=0, story="", shared_phone="")
    _event(unit, wish_id, now, actor.openid, "submitted")
    for openid in await _reviewers(session):
        notify(unit, openid, T.new_wish_notice(number, text, home.address, due), now)
    return WishResult("submitted", T.receipt(number, limits.review_hours), unit, number=number)


async def my_wishes(session: AsyncSession, who: str | Actor) -> WishResult:
    """我的心愿: the resident's latest wishes and where each stands."""
    actor = await actor_of(session, who)
    wishes = await repo.resident_wishes(session, actor.openid)
    return WishResult("list", T.wish_list([(w.number, w.text, w.status, w.created_at) for w in wishes]))


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


async def share_phone(session: AsyncSession, who: str | Actor, now: datetime, ref: str | None = None,
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
        ref = claimed[0].number
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
        notify(unit, openid, T.phone_for_member(w.number, phone), now)
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
        notify(unit, claimer.openid, T.member_confirmed(w.number, claimer.minutes), now)
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
    for openid in w.claimer_openids():
        notify(unit, openid, T.member_disputed(w.number, reason), now)
    for openid in await _committee(session):
        notify(unit, openid, T.committee_disputed(w.number, w.wish.public_text, reason), now)
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
    return WishResult("list", T.pending_list([(w.number, w.text, where, w.review_due) for w, where in items]))


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
        notify(unit, w.wish.openid, T.resident_approved(w.number, kind, text), now)
    else:
        unit.guards.append(_guard(w, status="rejected", reject_reason=reason, closed_at=now, **common))
        _event(unit, w.wish.id, now, actor.openid, "rejected", reason)
        notify(unit, w.wish.openid, T.resident_rejected(w.number, reason), now)
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


async def wall(session: AsyncSession, who: str | Actor, limits: Limits = Limits()) -> WishResult:
    """心愿墙: the approved, unclaimed wishes of the member's community, newest first, numbered, with kind and
    building only; then the group claims they may join."""
    actor = await actor_of(session, who)
    if refused := _member_refusal(actor):
        return refused
    items = await repo.wall(session, actor.community_id)
    groups = await repo.joinable(session, actor.community_id, limits.max_group)
    text = T.wall(await repo.community_name(session, actor.community_id),
                  [(i.number, i.kind, i.building, i.text) for i in items],
                  [(g.number, g.text, g.members) for g in groups])
    return WishResult("wall", text, detail={"numbers": [i.number for i in items]})


async def claim(session: AsyncSession, who: str | Actor, ref: str, now: datetime, *, group: bool = False) -> WishResult:
    """认领 编号 [团队]: the first member to claim an approved wish gets it (a guarded update); any other is
    told it is taken. A group claim (团队) lets other members join."""
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
    notify(unit, w.wish.openid, T.resident_claimed(w.number, await _title(session, actor.openid), group), now)
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
        notify(unit, openid, T.member_joined(w.number, title), now)
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
    notify(unit, w.wish.openid, T.resident_fulfilled(w.number, title, story), now)
    for openid in w.claimer_openids():
        if openid != actor_openid:
            notify(unit, openid, T.member_fulfilled(w.number, title, minutes), now)
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
    if OWNER in w.roles:
        for openid in w.claimer_openids():
            notify(unit, openid, T.from_resident(w.number, words), now)
    else:
        title = await _title(session, actor.openid)
        notify(unit, w.wish.openid, T.from_member(w.number, title, words), now)
        for openid in w.claimer_openids():
            if openid != actor.openid:
                notify(unit, openid, T.from_teammate(w.number, title, words), now)
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
                notify(unit, openid, text, now)
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
            if stage == "release":
                await session.execute(update(WishClaimer).where(
                    WishClaimer.wish_id == wish.id, WishClaimer.round == wish.claim_round,
                    WishClaimer.released_at.is_(None)).values(released_at=now))
                for c in claimers:
                    notify(unit, c.openid, T.member_released(wish.number), now)
                notify(unit, wish.openid, T.resident_released(wish.number), now)
                for openid in await _committee(session):
                    notify(unit, openid, T.committee_released(
                        wish.number, wish.public_text, limits.stale_days + limits.release_days), now)
                _event(unit, wish.id, now, "system", "released", "认领后没有进展")
            else:
                release_at = wish.progress_at + timedelta(days=limits.stale_days + limits.release_days)
                for c in claimers:
                    notify(unit, c.openid, T.member_stale(wish.number, release_at), now)
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
            if stage == "expire":
                notify(unit, wish.openid, T.resident_closed_unconfirmed(wish.number), now)
                for c in await repo.claimers(session, wish):
                    notify(unit, c.openid, T.member_closed_unconfirmed(wish.number, c.minutes), now)
                _event(unit, wish.id, now, "system", "expired", "居民未确认")
            else:
                left = wish.fulfilled_at + timedelta(days=limits.confirm_days) - now
                notify(unit, wish.openid, T.resident_confirm_reminder(wish.number, max(1, round(left.days))), now)
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
