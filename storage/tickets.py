"""Reads of tickets for the handlers. Writes go through storage.writer.Unit.

Plain functions of a Connection are the hot-path reads, run through storage.db.Reader (ctx.read)."""
from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, case, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Attachment, InboundMessage, Ticket, TicketEvent


# Hot-path statements are built once: building a select costs more than running it (about 160 µs vs 50 µs
# for the one below on SQLite); the values travel as bound parameters.
_OPEN_TICKETS = (select(Ticket.id, Ticket.number, Ticket.status, Ticket.text, Ticket.keywords)
                 .where(Ticket.openid == bindparam("openid"), Ticket.category == bindparam("category"),
                        Ticket.status.in_(bindparam("statuses", expanding=True)))
                 .order_by(Ticket.id.desc()))
_RESIDENT_TICKETS = (select(Ticket.number, Ticket.text, Ticket.status, Ticket.created_at)
                     .where(Ticket.openid == bindparam("openid"))
                     .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(bindparam("limit")))


def open_tickets(conn: Connection, openid: str, category: str, open_statuses: Collection[str]) -> list:
    """Rows (id, number, status, text, keywords) of the resident's open tickets in a category, newest first."""
    return list(conn.execute(_OPEN_TICKETS, {"openid": openid, "category": category,
                                             "statuses": list(open_statuses)}).all())


def openids_with_open_tickets(conn: Connection, open_statuses: Collection[str]) -> list[str]:
    rows = conn.execute(select(Ticket.openid).where(Ticket.status.in_(open_statuses)).distinct())
    return list(rows.scalars())


async def resident_ticket(session: AsyncSession, openid: str, number: str) -> Ticket | None:
    """The ticket with this number, only if it belongs to this resident."""
    return (await session.execute(
        select(Ticket).where(Ticket.number == number, Ticket.openid == openid))).scalar_one_or_none()


def resident_tickets(conn: Connection, openid: str, limit: int = 5) -> list:
    """Rows (number, text, status, created_at) of the resident's latest tickets: a lean Core query, as
    "我的诉求" is among the commonest messages."""
    return list(conn.execute(_RESIDENT_TICKETS, {"openid": openid, "limit": limit}).all())


async def timeline(session: AsyncSession, ticket_id: int) -> list[TicketEvent]:
    rows = await session.execute(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.at, TicketEvent.id))
    return list(rows.scalars())


async def orphan_attachment_ids(session: AsyncSession, openid: str, since: datetime) -> list[int]:
    """Pictures and places sent before the resident described the problem in words."""
    rows = await session.execute(select(Attachment.id).where(
        Attachment.openid == openid, Attachment.ticket_id.is_(None), Attachment.created_at >= since))
    return list(rows.scalars())


async def stored_reply(session: AsyncSession, dedupe_key: str) -> str | None:
    return (await session.execute(
        select(InboundMessage.reply).where(InboundMessage.dedupe_key == dedupe_key))).scalar_one_or_none()


# ---- staff lists: what a person's roles let them see, the most urgent first -----------------------------

_WORKING = ("dispatched", "accepted", "reopened")


def visible_to(roles) -> object:
    """Open tickets a person may see in lists: routed to their body (their grid for grid workers) and not
    yet accepted, or accepted by them; an admin sees every open ticket."""
    if any(r.role == "admin" for r in roles):
        return Ticket.status.in_(_WORKING)
    ids = [r.id for r in roles]
    bodies = [and_(Ticket.route == r.role, Ticket.grid_id == r.grid_id) if r.role == "grid_worker"
              else Ticket.route == r.role for r in roles]
    return or_(Ticket.assignee_id.in_(ids), and_(Ticket.assignee_id.is_(None), or_(*bodies)))


def _current_due():
    return case((Ticket.status == "dispatched", Ticket.response_due), else_=Ticket.resolve_due)


def _which(which: str, now: datetime):
    if which == "waiting":
        return Ticket.status == "dispatched"
    if which == "doing":
        return Ticket.status.in_(("accepted", "reopened"))
    if which == "late":
        return _current_due() < now
    return true()


async def staff_queue(session: AsyncSession, visible, which: str, now: datetime, offset: int,
                      limit: int) -> tuple[int, list[Ticket]]:
    """(how many, one page) of a staff list: emergencies first, then the nearest deadline, then the oldest."""
    where = (visible, Ticket.status.in_(_WORKING), _which(which, now))
    total = (await session.execute(select(func.count()).select_from(Ticket).where(*where))).scalar_one()
    due = _current_due()
    rows = await session.execute(select(Ticket).where(*where).order_by(
        Ticket.emergency.is_(None), due.is_(None), due, Ticket.id).offset(offset).limit(limit))
    return total, list(rows.scalars())


async def staff_counts(session: AsyncSession, visible, now: datetime) -> dict[str, int]:
    """How many of a person's visible tickets wait, are in hand, and are late: one query."""
    late = _current_due() < now
    row = (await session.execute(select(
        func.count().filter(Ticket.status == "dispatched"),
        func.count().filter(Ticket.status.in_(("accepted", "reopened"))),
        func.count().filter(late)).where(visible, Ticket.status.in_(_WORKING)))).one()
    return {"waiting": row[0], "doing": row[1], "late": row[2]}
