"""Votes in the database: building the roll, the ballot statement that keeps one row per voting unit, and the
reads the use cases, the console and reports share (handlers/votes.py writes through Units)."""
from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import and_, or_, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage import address as addr
from storage.ids import find_numbered
from storage.models import (Ballot, Building, BudgetProject, Community, Grid, Household, Owner, OwnerFlat, Resident,
                            Vote, VoteHolder, VotePart, VoteVoter)

SCOPES = ("community", "grid", "building")
UNITS = ("owners", "household", "resident")
_CHUNK = 1000


# ---- finding a vote ----------------------------------------------------------------------------------------------
async def find_vote(session: AsyncSession, ref: str | int) -> Vote | None:
    """A vote by its number as printed or by its bare id (storage.ids.find_numbered)."""
    return await find_numbered(session, Vote, ref)


def options_of(vote: Vote) -> list[str]:
    return json.loads(vote.options)


# ---- the scope and the roll --------------------------------------------------------------------------------------
async def scope_id(session: AsyncSession, community_id: int, scope: str, ref: str | None) -> int | None:
    """The grid's (by code) or building's (by name) id within the community; None for the whole community.
    ValueError names what was not found."""
    if scope == "community":
        return None
    if not ref:
        raise ValueError(f"--scope {scope} needs the {'grid code' if scope == 'grid' else 'building name'}")
    if scope == "grid":
        found = (await session.execute(select(Grid.id).where(Grid.community_id == community_id, Grid.code == ref))
                 ).scalar_one_or_none()
    else:
        found = (await session.execute(select(Building.id).where(
            Building.community_id == community_id, Building.name == ref))).scalar_one_or_none()
    if found is None:
        raise ValueError(f"no {scope} {ref!r} in this community")
    return found


def _in_scope(community_id: int, scope: str, scope_id_: int | None):
    if scope == "grid":
        return Building.grid_id == scope_id_
    if scope == "building":
        return Building.id == scope_id_
    return Building.community_id == community_id


async def scope_households(session: AsyncSession, community_id: int, scope: str, scope_id_: int | None) -> list:
    """Rows (household id, building id, area) of the flats in the scope, in id order."""
    rows = await session.execute(select(Household.id, Household.building_id, Household.floor_area)
                                 .join(Building, Building.id == Household.building_id)
                                 .where(_in_scope(community_id, scope, scope_id_)).order_by(Household.id))
    return list(rows.all())


async def bound_people(session: AsyncSession, household_ids: list[int]) -> list[tuple[str, int]]:
    """(openid, household id) of everyone bound to these flats: residents whose binding is confirmed, and
    owners who bound their 业主码."""
    found: list[tuple[str, int]] = []
    for i in range(0, len(household_ids), _CHUNK):
        chunk = household_ids[i:i + _CHUNK]
        residents = await session.execute(select(Resident.openid, Resident.household_id).where(
            Resident.household_id.in_(chunk), Resident.status == "bound"))
        owners = await session.execute(select(Owner.openid, OwnerFlat.household_id).join(
            OwnerFlat, OwnerFlat.owner_id == Owner.id).where(OwnerFlat.household_id.in_(chunk), Owner.openid.is_not(None)))
        found += [tuple(r) for r in residents.all()] + [tuple(r) for r in owners.all()]
    return found


# ---- who may cast for which voting unit -----------------------------------------------------------------------------
async def units_of(session: AsyncSession, vote: Vote, openid: str) -> list[str]:
    """The voting units on this vote's roll this person casts for (usually one; an owner of flats held with
    different people casts for each of those voters)."""
    if vote.unit == "owners":
        rows = await session.execute(select(VoteHolder.voter).join(Owner, Owner.id == VoteHolder.owner_id).where(
            VoteHolder.vote_id == vote.id, Owner.openid == openid).distinct().order_by(VoteHolder.voter))
        return list(rows.scalars())
    if vote.unit == "resident":
        candidates = [f"r{openid}"]
    else:
        homes = await session.execute(select(Resident.household_id).where(
            Resident.openid == openid, Resident.status == "bound", Resident.household_id.is_not(None)))
        owned = await session.execute(select(OwnerFlat.household_id).join(Owner, Owner.id == OwnerFlat.owner_id)
                                      .where(Owner.openid == openid))
        candidates = sorted({f"h{h}" for h in [*homes.scalars(), *owned.scalars()]})
    rows = await session.execute(select(VoteVoter.voter).where(VoteVoter.vote_id == vote.id,
                                                               VoteVoter.voter.in_(candidates)))
    return sorted(rows.scalars())


async def units_of_owner(session: AsyncSession, vote: Vote, register_id: str) -> list[str]:
    """The voting units a register owner (by owner_id) casts for: for paper ballots entered by staff."""
    rows = await session.execute(select(VoteHolder.voter).join(Owner, Owner.id == VoteHolder.owner_id).where(
        VoteHolder.vote_id == vote.id, Owner.community_id == vote.community_id, Owner.register_id == register_id)
        .distinct().order_by(VoteHolder.voter))
    return list(rows.scalars())


async def unit_of_household(session: AsyncSession, vote: Vote, code: str) -> list[str]:
    """A household's voting unit by its household code (paper ballots of a household vote)."""
    household = (await session.execute(select(Household.id).where(Household.code == code.strip()))).scalar_one_or_none()
    if household is None or vote.unit != "household":
        return []
    rows = await session.execute(select(VoteVoter.voter).where(VoteVoter.vote_id == vote.id,
                                                               VoteVoter.voter == f"h{household}"))
    return list(rows.scalars())


async def eligible_openids(session: AsyncSession, vote: Vote, voted: bool | None = None) -> list[str]:
    """Everyone who can cast in this vote now (for its notices), each person once; with `voted`, only those
    with a unit that has (True) or has not (False) voted."""
    which = true() if voted is None else VoteVoter.voted_at.is_not(None) if voted else VoteVoter.voted_at.is_(None)
    if vote.unit == "owners":
        rows = await session.execute(select(Owner.openid).join(VoteHolder, VoteHolder.owner_id == Owner.id).join(
            VoteVoter, and_(VoteVoter.vote_id == VoteHolder.vote_id, VoteVoter.voter == VoteHolder.voter)).where(
            VoteHolder.vote_id == vote.id, Owner.openid.is_not(None), which).distinct())
        return sorted(rows.scalars())
    voters = await session.execute(select(VoteVoter.voter).where(VoteVoter.vote_id == vote.id, which))
    keys = list(voters.scalars())
    if vote.unit == "resident":
        return sorted(k[1:] for k in keys)
    return sorted({openid for openid, _ in await bound_people(session, [int(k[1:]) for k in keys])})


# ---- ballots ----------------------------------------------------------------------------------------------------------
def ballot_statement(row: dict):
    """INSERT the unit's ballot, or replace the one it has if this one is later (by cast_at, then receipt):
    one row per voting unit whatever order concurrent casts commit in. The same statement compiles on
    SQLite (3.24+) and PostgreSQL."""
    stmt = pg_insert(Ballot).values(**row)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[Ballot.vote_id, Ballot.voter],
        set_={c: getattr(new, c) for c in ("choice", "picks", "receipt", "cast_at", "channel")},
        where=or_(Ballot.cast_at < new.cast_at, and_(Ballot.cast_at == new.cast_at, Ballot.receipt < new.receipt)))


def picks_text(picks: Iterable[int]) -> str:
    return ",".join(str(p) for p in picks)


def picks_of(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(",") if p)


async def counted_ballots(session: AsyncSession, vote_id: int) -> list:
    """Rows (voter, choice, cast_at, receipt, picks) of the vote's counted ballots."""
    return list((await session.execute(select(Ballot.voter, Ballot.choice, Ballot.cast_at, Ballot.receipt,
                                              Ballot.picks).where(Ballot.vote_id == vote_id))).all())


async def roll_parts(session: AsyncSession, vote_id: int) -> list:
    """Rows (voter, area, building name) of the vote's roll."""
    return list((await session.execute(select(VotePart.voter, VotePart.area, Building.name)
                                       .outerjoin(Building, Building.id == VotePart.building_id)
                                       .where(VotePart.vote_id == vote_id))).all())


async def projects(session: AsyncSession, vote_id: int) -> list[BudgetProject]:
    return list((await session.execute(select(BudgetProject).where(BudgetProject.vote_id == vote_id)
                                       .order_by(BudgetProject.position))).scalars())


async def voted_units(session: AsyncSession, vote_id: int) -> set[str]:
    rows = await session.execute(select(VoteVoter.voter).where(VoteVoter.vote_id == vote_id,
                                                               VoteVoter.voted_at.is_not(None)))
    return set(rows.scalars())


async def flats_not_voted(session: AsyncSession, vote_id: int, building_ids: set[int] | None) -> dict[str, list[str]]:
    """building name -> addresses of its flats (or residents' flats) whose unit has not voted: for door knocking."""
    query = (select(Building.name, Household.unit, Household.room)
             .select_from(VotePart)
             .join(VoteVoter, and_(VoteVoter.vote_id == VotePart.vote_id, VoteVoter.voter == VotePart.voter))
             .join(Household, Household.id == VotePart.household_id)
             .join(Building, Building.id == VotePart.building_id)
             .where(VotePart.vote_id == vote_id, VoteVoter.voted_at.is_(None))
             .order_by(Building.name, Household.unit, Household.room))
    if building_ids is not None:
        query = query.where(VotePart.building_id.in_(building_ids))
    found: dict[str, list[str]] = {}
    for b, u, r in await session.execute(query):
        found.setdefault(b, []).append(addr.display(b, u, r))
    return found


async def bulletin_rows(session: AsyncSession, vote: Vote) -> list[dict]:
    """The counted ballots as the bulletin shows them, ordered by receipt (an order that says nothing about
    who or when); a named vote adds the flats each ballot speaks for."""
    rows = (await session.execute(select(Ballot.receipt, Ballot.choice, Ballot.picks, Ballot.voter)
                                  .where(Ballot.vote_id == vote.id).order_by(Ballot.receipt))).all()
    labels: dict[str, list[str]] = {}
    if not vote.secret:
        parts = await session.execute(select(VotePart.voter, Building.name, Household.unit, Household.room)
                                      .join(Household, Household.id == VotePart.household_id)
                                      .join(Building, Building.id == VotePart.building_id)
                                      .where(VotePart.vote_id == vote.id).order_by(VotePart.part))
        for voter, b, u, r in parts:
            labels.setdefault(voter, []).append(addr.display(b, u, r))
    out = []
    for receipt, choice, picks, voter in rows:
        entry: dict = {"receipt": receipt, "choice": list(picks_of(picks)) if vote.rule == "budget" else choice}
        if not vote.secret:
            entry["flats"] = labels.get(voter, [])
        out.append(entry)
    return out


async def community_by_code(session: AsyncSession, code: str) -> Community | None:
    return (await session.execute(select(Community).where(Community.code == code))).scalar_one_or_none()


async def building_names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict((await session.execute(select(Building.id, Building.name).where(Building.id.in_(ids)))).all())


async def grid_buildings(session: AsyncSession, grid_ids: set[int]) -> set[int]:
    if not grid_ids:
        return set()
    return set((await session.execute(select(Building.id).where(Building.grid_id.in_(grid_ids)))).scalars())
