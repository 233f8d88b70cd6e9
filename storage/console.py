"""Reads for the web console: who may see which tickets (a condition on tickets), the filtered ticket list,
the dashboard's counts, one ticket with its timeline and pictures.

A viewer's scope is one SQL condition, applied to every read the console makes, so a direct URL to another
scope's ticket finds nothing (404), exactly like a list that does not show it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, false, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Attachment, Cluster, Grid, Staff, Ticket, TicketEvent, TicketParty

OPEN = ("submitted", "dispatched", "accepted", "reopened")  # as handlers.ticket_rules.OPEN
BODIES = {"residents_committee", "owners_committee", "property", "mediation", "duty_desk"}
CONSOLE_ROLES = BODIES | {"grid_worker", "admin"}  # party members have no console (their pages come later)
COUNT_CAP = 2_000  # a list says "2000+" (100 pages) beyond this: counting further costs more than the page
SORTS = {
    "new": (Ticket.created_at.desc(), Ticket.id.desc()),
    "old": (Ticket.created_at.asc(), Ticket.id.asc()),
    "due": (Ticket.resolve_due.asc(), Ticket.id.asc()),
}


def console_roles(roles: Iterable[Staff]) -> list[Staff]:
    return [r for r in roles if r.role in CONSOLE_ROLES]


def ticket_scope(roles: Iterable[Staff]) -> ColumnElement[bool] | None:
    """The tickets these roles may see; None: every ticket.

    admin: every ticket (an admin bound to a grid: the tickets of that grid's community);
    grid worker: the tickets of their grid; a committee, the property company, mediation, the duty desk: the
    tickets routed to it or that it co-handles (三方联动). (Whoever accepted a ticket is of its body and, for
    grid work, its grid: handlers.staff.may_take; handing it on clears the assignee. So "the tickets they
    accepted" needs no condition of its own, and an OR on assignee_id would keep the database from walking
    the (grid_id, created_at) index: 92 -> 2 ms for a grid worker's list at a million tickets.)"""
    parts: list[ColumnElement[bool]] = []
    for r in roles:
        if r.role == "admin":
            if r.grid_id is None:
                return None
            community = select(Grid.community_id).where(Grid.id == r.grid_id).scalar_subquery()
            parts.append(Ticket.grid_id.in_(select(Grid.id).where(Grid.community_id == community)))
        elif r.role == "grid_worker":
            parts.append(Ticket.grid_id == r.grid_id)
        elif r.role in BODIES:
            parts.append(Ticket.route == r.role)
            parts.append(Ticket.id.in_(select(TicketParty.ticket_id).where(
                TicketParty.route == r.role, TicketParty.lead.is_(False))))
    return or_(*parts) if parts else false()


def overdue(now: datetime) -> ColumnElement[bool]:
    """Open and past the deadline that counts now (签收 while dispatched, 办结 once accepted)."""
    at = literal(now)
    return or_(and_(Ticket.status == "dispatched", Ticket.response_due < at),
               and_(Ticket.status.in_(("accepted", "reopened")), Ticket.resolve_due < at))


@dataclass(frozen=True)
class TicketFilter:
    status: str = ""  # a status, "open", or "" for all
    category: str = ""
    grid_id: int | None = None
    month: tuple[datetime, datetime] | None = None  # [start, end) of created_at
    overdue: bool = False
    sort: str = "new"
    page: int = 1


def conditions(scope: ColumnElement[bool] | None, f: TicketFilter, now: datetime) -> list[ColumnElement[bool]]:
    where = [] if scope is None else [scope]
    if f.status == "open":
        where.append(Ticket.status.in_(OPEN))
    elif f.status:
        where.append(Ticket.status == f.status)
    if f.category:
        where.append(Ticket.category == f.category)
    if f.grid_id is not None:
        where.append(Ticket.grid_id == f.grid_id)
    if f.month is not None:
        where += [Ticket.created_at >= f.month[0], Ticket.created_at < f.month[1]]
    if f.overdue:
        where.append(overdue(now))
    return where


LIST_COLUMNS = (Ticket.id, Ticket.number, Ticket.text, Ticket.category, Ticket.status, Ticket.route,
                Ticket.grid_id, Ticket.created_at, Ticket.response_due, Ticket.resolve_due, Ticket.emergency,
                Ticket.assignee_id)


@dataclass(frozen=True)
class TicketPage:
    rows: list
    total: int  # at most COUNT_CAP + 1
    page: int
    page_size: int

    @property
    def capped(self) -> bool:
        return self.total > COUNT_CAP

    @property
    def pages(self) -> int:
        return max(1, -(-min(self.total, COUNT_CAP) // self.page_size))


def list_query(scope, f: TicketFilter, now: datetime, page_size: int):
    return (select(*LIST_COLUMNS).where(*conditions(scope, f, now)).order_by(*SORTS.get(f.sort, SORTS["new"]))
            .limit(page_size).offset((max(f.page, 1) - 1) * page_size))


def count_query(scope, f: TicketFilter, now: datetime):
    capped = select(literal(1)).select_from(Ticket).where(*conditions(scope, f, now)).limit(COUNT_CAP + 1)
    return select(func.count()).select_from(capped.subquery())


async def ticket_page(session: AsyncSession, scope, f: TicketFilter, now: datetime, page_size: int = 20) -> TicketPage:
    rows = list((await session.execute(list_query(scope, f, now, page_size))).all())
    total = (await session.execute(count_query(scope, f, now))).scalar_one()
    return TicketPage(rows, total, max(f.page, 1), page_size)


async def ticket_rows(session: AsyncSession, scope, f: TicketFilter, now: datetime):
    """Every ticket the filter selects, streamed in the list's order (the CSV export)."""
    query = select(*LIST_COLUMNS).where(*conditions(scope, f, now)).order_by(*SORTS.get(f.sort, SORTS["new"]))
    result = await session.stream(query.execution_options(yield_per=2000))
    async for row in result:
        yield row


async def visible_ticket(session: AsyncSession, scope, number: str) -> Ticket | None:
    """The ticket with this number, only if the scope lets the viewer see it."""
    where = [Ticket.number == number] + ([] if scope is None else [scope])
    return (await session.execute(select(Ticket).where(*where))).scalar_one_or_none()


async def ticket_timeline(session: AsyncSession, ticket_id: int) -> tuple[list[TicketEvent], list[Attachment]]:
    events = (await session.execute(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
                                    .order_by(TicketEvent.at, TicketEvent.id))).scalars().all()
    attachments = (await session.execute(select(Attachment).where(Attachment.ticket_id == ticket_id)
                                         .order_by(Attachment.id))).scalars().all()
    return list(events), list(attachments)


@dataclass(frozen=True)
class Today:
    new: int
    open: int
    overdue: int


async def today(session: AsyncSession, scope, day_start: datetime, now: datetime) -> Today:
    where = [] if scope is None else [scope]

    async def count(*more) -> int:
        return (await session.execute(select(func.count()).select_from(Ticket).where(*where, *more))).scalar_one()

    return Today(await count(Ticket.created_at >= day_start), await count(Ticket.status.in_(OPEN)),
                 await count(overdue(now)))


async def by_category(session: AsyncSession, scope, since: datetime) -> dict[str, int]:
    where = [Ticket.created_at >= since] + ([] if scope is None else [scope])
    rows = await session.execute(select(Ticket.category, func.count()).where(*where).group_by(Ticket.category)
                                 .order_by(func.count().desc()))
    return dict(rows.all())


@dataclass(frozen=True)
class GridHeat:
    grid_id: int
    name: str
    polygon: str | None
    tickets: int  # reported since the window's start
    hotspots: int  # clusters of several households reporting the same thing


async def grid_heat(session: AsyncSession, scope, since: datetime) -> list[GridHeat]:
    where = [Ticket.created_at >= since, Ticket.grid_id.is_not(None)] + ([] if scope is None else [scope])
    counts = dict((await session.execute(select(Ticket.grid_id, func.count()).where(*where)
                                         .group_by(Ticket.grid_id))).all())
    clusters = dict((await session.execute(select(Cluster.grid_id, func.count()).where(
        Cluster.updated_at >= since, Cluster.households > 1).group_by(Cluster.grid_id))).all())
    grids = (await session.execute(select(Grid).order_by(Grid.id))).scalars().all()
    return [GridHeat(g.id, g.name, g.polygon, counts.get(g.id, 0), clusters.get(g.id, 0))
            for g in grids if g.id in counts or scope is None]


async def grids_in_scope(session: AsyncSession, roles: Iterable[Staff]) -> list[Grid]:
    """The grids a viewer may filter by: all for admins and committees, their own for grid workers."""
    roles = list(roles)
    query = select(Grid).order_by(Grid.id)
    if not any(r.role != "grid_worker" for r in roles):
        query = query.where(Grid.id.in_([r.grid_id for r in roles]))
    return list((await session.execute(query)).scalars())


def day_start_utc(now: datetime, offset: timedelta = timedelta(hours=8)) -> datetime:
    """The naive-UTC moment today began in China time."""
    local = now + offset
    return local.replace(hour=0, minute=0, second=0, microsecond=0) - offset
