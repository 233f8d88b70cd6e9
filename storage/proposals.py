"""Proposals (议题) in the database: the reads the use cases, the console and reports share; writes go
through Units in handlers/proposals.py, handlers/meetings.py and handlers/outcomes.py."""
from __future__ import annotations

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.ids import find_numbered
from storage.models import (Building, Cluster, Comment, Community, Convention, Cosignature, DeliberationEvent,
                            DeliberationTask, Grid, Household, Meeting, OutcomeRating, Owner, OwnerFlat, Proposal,
                            Resident, Ticket, Vote)


async def find_proposal(session: AsyncSession, ref: str | int) -> Proposal | None:
    return await find_numbered(session, Proposal, ref)


async def find_meeting(session: AsyncSession, ref: str | int) -> Meeting | None:
    return await find_numbered(session, Meeting, ref)


async def home_of(session: AsyncSession, openid: str) -> tuple[int, int, int, int] | None:
    """(household id, building id, grid id, community id) of a person's flat: the one their confirmed
    binding names, else the first flat of an owner they bound; None when neither."""
    base = (select(Household.id, Building.id, Building.grid_id, Building.community_id)
            .join(Building, Building.id == Household.building_id))
    row = (await session.execute(base.join(Resident, Resident.household_id == Household.id).where(
        Resident.openid == openid, Resident.status == "bound"))).first()
    if row is None:
        row = (await session.execute(base.join(OwnerFlat, OwnerFlat.household_id == Household.id)
                                     .join(Owner, Owner.id == OwnerFlat.owner_id)
                                     .where(Owner.openid == openid).order_by(Household.id).limit(1))).first()
    return tuple(row) if row else None


def _scope_condition(scope: str, scope_id: int | None, community_id: int | None):
    if scope == "grid":
        return Building.grid_id == scope_id
    if scope == "building":
        return Building.id == scope_id
    return Building.community_id == community_id


async def where_is(session: AsyncSession, proposal: Proposal) -> tuple[int | None, str, int | None]:
    """(community id, scope, scope id) of a proposal; a hot spot's candidate belongs to its cluster's grid."""
    if proposal.community_id is not None or proposal.cluster_id is None:
        return proposal.community_id, proposal.scope, proposal.scope_id
    row = (await session.execute(select(Grid.community_id, Grid.id).join(Cluster, Cluster.grid_id == Grid.id)
                                 .where(Cluster.id == proposal.cluster_id))).first()
    return (row[0], "grid", row[1]) if row else (None, "community", None)


async def households_in_scope(session: AsyncSession, proposal: Proposal) -> int:
    community_id, scope, scope_id = await where_is(session, proposal)
    return (await session.execute(select(func.count()).select_from(Household).join(
        Building, Building.id == Household.building_id).where(_scope_condition(scope, scope_id, community_id)))
            ).scalar_one()


async def in_scope(session: AsyncSession, proposal: Proposal, household_id: int) -> bool:
    community_id, scope, scope_id = await where_is(session, proposal)
    return (await session.execute(select(Household.id).join(Building, Building.id == Household.building_id).where(
        Household.id == household_id, _scope_condition(scope, scope_id, community_id)))).first() is not None


async def supporters(session: AsyncSession, proposal_id: int) -> int:
    return (await session.execute(select(func.count()).select_from(Cosignature).where(
        Cosignature.proposal_id == proposal_id))).scalar_one()


async def has_cosigned(session: AsyncSession, proposal_id: int, household_id: int) -> bool:
    return await session.get(Cosignature, (proposal_id, household_id)) is not None


async def supporter_openids(session: AsyncSession, proposal_id: int) -> list[str]:
    """Who raised or co-signed it (told of its meetings)."""
    rows = await session.execute(select(Cosignature.openid).where(Cosignature.proposal_id == proposal_id)
                                 .distinct().order_by(Cosignature.openid))
    return list(rows.scalars())


async def comments_today(session: AsyncSession, proposal_id: int, openid: str, day: str) -> int:
    return (await session.execute(select(func.count()).select_from(Comment).where(
        Comment.proposal_id == proposal_id, Comment.openid == openid, Comment.day == day))).scalar_one()


async def latest_comments(session: AsyncSession, proposal_id: int, limit: int = 5) -> list[Comment]:
    rows = await session.execute(select(Comment).where(Comment.proposal_id == proposal_id)
                                 .order_by(Comment.at.desc(), Comment.id.desc()).limit(limit))
    return list(reversed(rows.scalars().all()))


async def proposals_of(session: AsyncSession, community_id: int, statuses: list[str] | None = None) -> list[Proposal]:
    """A community's proposals, hot-spot candidates of its grids included, newest first."""
    of_grids = select(Cluster.id).join(Grid, Grid.id == Cluster.grid_id).where(Grid.community_id == community_id)
    query = select(Proposal).where(or_(Proposal.community_id == community_id,
                                       and_(Proposal.community_id.is_(None), Proposal.cluster_id.in_(of_grids))))
    if statuses:
        query = query.where(Proposal.status.in_(statuses))
    return list((await session.execute(query.order_by(Proposal.created_at.desc(), Proposal.id.desc()))).scalars())


async def meetings_of(session: AsyncSession, proposal_id: int) -> list[Meeting]:
    return list((await session.execute(select(Meeting).where(Meeting.proposal_id == proposal_id)
                                       .order_by(Meeting.starts_at))).scalars())


async def votes_of(session: AsyncSession, proposal_id: int) -> list[Vote]:
    return list((await session.execute(select(Vote).where(Vote.proposal_id == proposal_id)
                                       .order_by(Vote.opened_at))).scalars())


async def tasks_of(session: AsyncSession, proposal_id: int) -> list[Ticket]:
    return list((await session.execute(select(Ticket).join(DeliberationTask, DeliberationTask.ticket_id == Ticket.id)
                                       .where(DeliberationTask.proposal_id == proposal_id).order_by(Ticket.id))
                 ).scalars())


async def ratings_of(session: AsyncSession, proposal_id: int) -> dict[int, int]:
    rows = await session.execute(select(OutcomeRating.rating, func.count()).where(
        OutcomeRating.proposal_id == proposal_id).group_by(OutcomeRating.rating))
    return dict(rows.all())


async def timeline(session: AsyncSession, proposal_id: int) -> list[DeliberationEvent]:
    rows = await session.execute(select(DeliberationEvent).where(DeliberationEvent.proposal_id == proposal_id)
                                 .order_by(DeliberationEvent.at, DeliberationEvent.id))
    return list(rows.scalars())


async def conventions(session: AsyncSession, community_id: int) -> list[tuple[Convention, str]]:
    """The community's adopted 微公约 with the number of the vote that adopted each."""
    rows = await session.execute(select(Convention, Vote.number).join(Vote, Vote.id == Convention.vote_id)
                                 .where(Convention.community_id == community_id).order_by(Convention.adopted_at))
    return [tuple(r) for r in rows]


async def community_name(session: AsyncSession, community_id: int | None) -> str:
    if community_id is None:
        return ""
    return (await session.execute(select(Community.name).where(Community.id == community_id))).scalar_one_or_none() or ""
