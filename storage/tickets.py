"""Reads of tickets for the handlers. Writes go through storage.writer.Unit."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Attachment, InboundMessage, Ticket, TicketEvent


async def resident_ticket(session: AsyncSession, openid: str, number: str) -> Ticket | None:
    """The ticket with this number, only if it belongs to this resident."""
    return (await session.execute(
        select(Ticket).where(Ticket.number == number, Ticket.openid == openid))).scalar_one_or_none()


async def resident_tickets(session: AsyncSession, openid: str, limit: int = 5) -> list[Ticket]:
    rows = await session.execute(
        select(Ticket).where(Ticket.openid == openid).order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit))
    return list(rows.scalars())


async def timeline(session: AsyncSession, ticket_id: int) -> list[TicketEvent]:
    rows = await session.execute(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.at, TicketEvent.id))
    return list(rows.scalars())


async def attachment_count(session: AsyncSession, ticket_id: int) -> int:
    rows = await session.execute(select(Attachment.id).where(Attachment.ticket_id == ticket_id))
    return len(rows.all())


async def orphan_attachment_ids(session: AsyncSession, openid: str, since: datetime) -> list[int]:
    """Pictures and places sent before the resident described the problem in words."""
    rows = await session.execute(select(Attachment.id).where(
        Attachment.openid == openid, Attachment.ticket_id.is_(None), Attachment.created_at >= since))
    return list(rows.scalars())


async def stored_reply(session: AsyncSession, dedupe_key: str) -> str | None:
    return (await session.execute(
        select(InboundMessage.reply).where(InboundMessage.dedupe_key == dedupe_key))).scalar_one_or_none()
