"""Reads of micro-wishes and Party members for the use cases, the CLI and reports. Writes go through
storage.writer.Unit (see handlers/wishes.py)."""
from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import address as addr
from storage.ids import is_valid_ticket_number
from storage.models import (Building, Community, Household, PartyMember, Resident, Staff, Wish, WishClaimer,
                            WishEvent, WishPhoto)


class AmbiguousRef(LookupError):
    """The text is one wish's number and another wish's bare id."""


async def wish_by_ref(session: AsyncSession, ref: str) -> Wish | None:
    """The wish a person or a script names: its number (id + check digit, as on every receipt) or, for
    scripts, its bare id. A text that is both one wish's number and another's id raises AmbiguousRef."""
    ref = ref.strip()
    if not (ref.isascii() and ref.isdigit()) or len(ref) > 18:
        return None
    conditions = [Wish.id == int(ref)]
    if is_valid_ticket_number(ref):
        conditions.append(Wish.number == ref)
    found = list((await session.execute(select(Wish).where(or_(*conditions)))).scalars())
    if len(found) > 1:
        raise AmbiguousRef(ref)
    return found[0] if found else None


@dataclass(frozen=True, slots=True)
class Acting:
    """A person about to act on one wish, read in one lean round trip (repo.acting)."""

    roles: frozenset[str]  # their active staff roles
    name: str  # the name they registered (报到) with, else their Party member role's name
    community_id: int | None  # where they registered
    wish: object | None  # the wish's row (its table's columns), None when no wish has the number
    claimers: list  # rows of its current claim, the one who claimed first


_ROLES = select(Staff.role, Staff.name).where(Staff.openid == bindparam("openid"), Staff.active.is_(True))
_REGISTERED = select(PartyMember.community_id, PartyMember.name).where(PartyMember.openid == bindparam("openid"))
_WISH_ROW = select(Wish.__table__).where(Wish.number == bindparam("number"))
_CLAIM_ROWS = (select(WishClaimer.__table__).where(
    WishClaimer.wish_id == bindparam("wish_id"), WishClaimer.round == bindparam("round"),
    WishClaimer.released_at.is_(None)).order_by(WishClaimer.lead.desc(), WishClaimer.joined_at, WishClaimer.id))


def acting(conn: Connection, openid: str, number: str) -> Acting:
    """Who this person is for wishes, and the wish with this number with its claim: Core reads on the hot
    path's connection (what `actor_of`, `wish_by_number`, `claimers` and `member_names` read)."""
    roles = conn.execute(_ROLES, {"openid": openid}).all()
    registered = conn.execute(_REGISTERED, {"openid": openid}).first()
    wish = conn.execute(_WISH_ROW, {"number": number}).first()
    claimers = []
    if wish is not None and wish.claim_round:
        claimers = list(conn.execute(_CLAIM_ROWS, {"wish_id": wish.id, "round": wish.claim_round}).all())
    name = (registered.name if registered else "") or next((n for r, n in roles if r == "party_member"), "")
    return Acting(frozenset(r for r, _ in roles), name, registered.community_id if registered else None, wish,
                  claimers)


async def wish_by_number(session: AsyncSession, number: str) -> Wish | None:
    return (await session.execute(select(Wish).where(Wish.number == number))).scalar_one_or_none()


async def claimers(session: AsyncSession, wish: Wish) -> list[WishClaimer]:
    """The members of the wish's current claim, the one who claimed first."""
    if wish.claim_round == 0:
        return []
    rows = await session.execute(select(WishClaimer).where(
        WishClaimer.wish_id == wish.id, WishClaimer.round == wish.claim_round, WishClaimer.released_at.is_(None))
        .order_by(WishClaimer.lead.desc(), WishClaimer.joined_at, WishClaimer.id))
    return list(rows.scalars())


async def member_names(session: AsyncSession, openids: list[str]) -> dict[str, str]:
    """openid -> the name a Party member registered with, else their staff name."""
    if not openids:
        return {}
    names = dict((await session.execute(select(Staff.openid, Staff.name).where(
        Staff.openid.in_(openids), Staff.role == "party_member"))).all())
    names.update({o: n for o, n in (await session.execute(select(PartyMember.openid, PartyMember.name).where(
        PartyMember.openid.in_(openids)))).all() if n})
    return names


async def party_member(session: AsyncSession, openid: str) -> PartyMember | None:
    return await session.get(PartyMember, openid)


async def open_count(session: AsyncSession, openid: str, open_statuses) -> int:
    return (await session.execute(select(func.count()).select_from(Wish).where(
        Wish.openid == openid, Wish.status.in_(open_statuses)))).scalar_one()


@dataclass(frozen=True, slots=True)
class Home:
    """Where a resident's wish comes from."""

    household_id: int
    building_id: int
    community_id: int
    building: str  # "3栋"
    address: str  # "3栋2单元501": for reviewers only


# Equalities rather than IN: an IN list is expanded into the SQL at every execution, which cost a wish's read
# on the hot path as much again (the statuses are few and fixed).
_HOME = (select(Household.id, Building.id, Building.community_id, Building.name, Household.unit, Household.room)
         .select_from(Resident).join(Household, Household.id == Resident.household_id)
         .join(Building, Building.id == Household.building_id)
         .where(Resident.openid == bindparam("openid"), or_(Resident.status == "bound", Resident.status == "pending")))
@functools.cache
def _home_and_open(open_statuses: tuple[str, ...]):
    """The home and the open wishes in one statement (one round trip on the hot path): a row per open wish, or
    one row without a number."""
    return (_HOME.add_columns(Wish.number)
            .outerjoin(Wish, (Wish.openid == Resident.openid) & or_(*(Wish.status == s for s in open_statuses)))
            .order_by(Wish.created_at.desc(), Wish.id.desc()))


def _home(row) -> Home | None:
    if row is None:
        return None
    household_id, building_id, community_id, building, unit, room = row
    return Home(household_id, building_id, community_id, building, addr.display(building, unit, room))


async def resident_home(session: AsyncSession, openid: str) -> Home | None:
    """The household a resident is bound to (confirmed or waiting for the grid worker), or None."""
    return _home((await session.execute(_HOME, {"openid": openid})).first())


def wisher(conn: Connection, openid: str, open_statuses: Collection[str]) -> tuple[Home | None, list[str]]:
    """What a new wish needs to know of its resident, in one lean Core read (the chat's hot path): their home,
    and the numbers of their open wishes, newest first."""
    rows = conn.execute(_home_and_open(tuple(sorted(open_statuses))), {"openid": openid}).all()
    if not rows:
        return None, []
    return _home(rows[0][:6]), [row.number for row in rows if row.number is not None]


async def community_id_by_name(session: AsyncSession, text: str) -> int | None:
    """A community named by its name (幸福里社区, or without 社区) or code."""
    text = text.strip()
    if not text:
        return None
    rows = (await session.execute(select(Community.id).where(or_(
        Community.code == text, Community.name == text, Community.name == text + "社区")))).scalars().all()
    return rows[0] if len(rows) == 1 else None


async def only_community_id(session: AsyncSession) -> int | None:
    ids = (await session.execute(select(Community.id).limit(2))).scalars().all()
    return ids[0] if len(ids) == 1 else None


async def community_name(session: AsyncSession, community_id: int) -> str:
    community = await session.get(Community, community_id)
    return community.name if community else ""


async def building_name(session: AsyncSession, building_id: int) -> str:
    building = await session.get(Building, building_id)
    return building.name if building else ""


async def resident_wishes(session: AsyncSession, openid: str, limit: int = 10) -> list[Wish]:
    rows = await session.execute(select(Wish).where(Wish.openid == openid)
                                 .order_by(Wish.created_at.desc(), Wish.id.desc()).limit(limit))
    return list(rows.scalars())


@dataclass(frozen=True, slots=True)
class WallItem:
    """What the wish wall shows of a wish: never the room, the name, the phone or the household code."""

    number: str
    kind: str | None
    building: str
    text: str  # the public text
    members: int = 0  # for a group claim open to join: members so far


async def wall(session: AsyncSession, community_id: int, limit: int = 20, offset: int = 0) -> list[WallItem]:
    """Approved, unclaimed wishes of one community, newest on the wall first (`limit` of them from `offset`)."""
    rows = await session.execute(
        select(Wish.number, Wish.kind, Building.name, Wish.public_text).join(Building, Building.id == Wish.building_id)
        .where(Wish.community_id == community_id, Wish.status == "approved")
        .order_by(Wish.approved_at.desc(), Wish.id.desc()).limit(limit).offset(offset))
    return [WallItem(*row) for row in rows]


async def joinable(session: AsyncSession, community_id: int, max_group: int, limit: int = 10) -> list[WallItem]:
    """Group claims (团队认领) in one community that still have room, newest claim first."""
    size = (select(func.count()).select_from(WishClaimer).where(
        WishClaimer.wish_id == Wish.id, WishClaimer.round == Wish.claim_round, WishClaimer.released_at.is_(None))
        .scalar_subquery())
    rows = await session.execute(
        select(Wish.number, Wish.kind, Building.name, Wish.public_text, size)
        .join(Building, Building.id == Wish.building_id)
        .where(Wish.community_id == community_id, Wish.status == "claimed", Wish.group_claim.is_(True),
               size < max_group)
        .order_by(Wish.claimed_at.desc(), Wish.id.desc()).limit(limit))
    return [WallItem(*row) for row in rows]


async def pending_reviews(session: AsyncSession, limit: int = 20) -> list[tuple[Wish, str]]:
    """Wishes waiting for the community's review, oldest first, with the household's address (the review
    checks the household)."""
    rows = await session.execute(
        select(Wish, Building.name, Household.unit, Household.room)
        .join(Household, Household.id == Wish.household_id).join(Building, Building.id == Wish.building_id)
        .where(Wish.status == "submitted").order_by(Wish.created_at, Wish.id).limit(limit))
    return [(wish, addr.display(b, u, r)) for wish, b, u, r in rows]


@dataclass(frozen=True, slots=True)
class Service:
    """One of a member's claims, for 我的服务."""

    number: str
    text: str
    status: str
    lead: bool
    released: bool
    minutes: int | None  # their share, counted once the wish is closed


async def member_service(session: AsyncSession, openid: str, limit: int = 10) -> list[Service]:
    rows = await session.execute(
        select(Wish.number, Wish.public_text, Wish.status, WishClaimer.lead, WishClaimer.released_at,
               WishClaimer.minutes)
        .join(Wish, Wish.id == WishClaimer.wish_id).where(WishClaimer.openid == openid)
        .order_by(WishClaimer.joined_at.desc(), WishClaimer.id.desc()).limit(limit))
    return [Service(n, t, s, lead, released is not None, m) for n, t, s, lead, released, m in rows]


async def confirmed_minutes(session: AsyncSession, openid: str) -> int:
    """A member's shares of the time of closed wishes, in all."""
    return (await session.execute(select(func.coalesce(func.sum(WishClaimer.minutes), 0))
                                  .join(Wish, Wish.id == WishClaimer.wish_id).where(
        WishClaimer.openid == openid, WishClaimer.released_at.is_(None), WishClaimer.round == Wish.claim_round,
        Wish.status == "closed"))).scalar_one()


async def timeline(session: AsyncSession, wish_id: int) -> list[WishEvent]:
    rows = await session.execute(
        select(WishEvent).where(WishEvent.wish_id == wish_id).order_by(WishEvent.at, WishEvent.id))
    return list(rows.scalars())


async def photos(session: AsyncSession, wish_id: int) -> list[WishPhoto]:
    rows = await session.execute(select(WishPhoto).where(WishPhoto.wish_id == wish_id).order_by(WishPhoto.id))
    return list(rows.scalars())


# -- the hours report -----------------------------------------------------------------------------------------------
@dataclass
class MemberHours:
    openid: str
    name: str
    unit: str
    minutes: int = 0
    wishes: int = 0  # wishes closed in the month that they took part in


@dataclass
class HoursReport:
    members: list[MemberHours] = field(default_factory=list)  # every registered member, most hours first
    units: list[MemberHours] = field(default_factory=list)  # per 工作单位 (openid and name empty)
    idle: list[MemberHours] = field(default_factory=list)  # registered members who claimed nothing in the quarter


async def hours_report(session: AsyncSession, start: datetime, end: datetime, quarter_start: datetime,
                       quarter_end: datetime) -> HoursReport:
    """Hours and wishes of the wishes closed in [start, end) per registered Party member and per work unit,
    and the members without any claim in [quarter_start, quarter_end)."""
    registered = list((await session.execute(select(PartyMember).order_by(PartyMember.unit, PartyMember.name,
                                                                          PartyMember.openid))).scalars())
    names = await member_names(session, [m.openid for m in registered])
    members = {m.openid: MemberHours(m.openid, names.get(m.openid, "") or m.openid[:8], m.unit) for m in registered}
    units: dict[str, MemberHours] = {}
    unit_wishes: dict[str, set[int]] = defaultdict(set)  # a wish two colleagues did together counts once
    for member in members.values():
        units.setdefault(member.unit, MemberHours("", "", member.unit))
    rows = await session.execute(
        select(WishClaimer.openid, WishClaimer.minutes, Wish.id).join(Wish, Wish.id == WishClaimer.wish_id).where(
            Wish.status == "closed", Wish.closed_at >= start, Wish.closed_at < end,
            WishClaimer.round == Wish.claim_round, WishClaimer.released_at.is_(None)))
    for openid, minutes, wish_id in rows:
        if (member := members.get(openid)) is None:  # no longer registered: not in a community's report
            continue
        member.minutes += minutes or 0
        member.wishes += 1
        units[member.unit].minutes += minutes or 0
        unit_wishes[member.unit].add(wish_id)
    for unit, wish_ids in unit_wishes.items():
        units[unit].wishes = len(wish_ids)
    claimed = set((await session.execute(select(WishClaimer.openid).where(
        WishClaimer.joined_at >= quarter_start, WishClaimer.joined_at < quarter_end).distinct())).scalars())

    def most(items):
        return sorted(items, key=lambda m: (-m.minutes, -m.wishes, m.unit, m.name))

    return HoursReport(most(members.values()), most(units.values()),
                       [m for m in members.values() if m.openid not in claimed])
