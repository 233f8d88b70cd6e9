"""Database tables. Times are naive UTC; the service shows them in China time (UTC+8)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Ticket(Base):
    """诉求: a resident's complaint or request. `id` comes from the id allocator, `number` is read aloud."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=False)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    text: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float] = mapped_column(Float)
    keywords: Mapped[str] = mapped_column(String(200), default="")  # space separated, strongest first
    intent: Mapped[str] = mapped_column(String(16), default="complaint")
    emergency: Mapped[str | None] = mapped_column(String(16), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Attachment(Base):
    """A picture, location, voice note or extra text a resident sent about a ticket.

    `ticket_id` is empty while the resident has not yet described the problem in words; the next ticket
    they open within a few minutes takes it over.
    """

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), nullable=True, index=True)
    openid: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # image, location, voice, text
    media_id: Mapped[str] = mapped_column(String(200), default="")
    url: Mapped[str] = mapped_column(String(500), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_attachments_orphans", "openid", "ticket_id"),)


class TicketEvent(Base):
    """Append-only timeline of a ticket: who did what, when and why."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))  # an openid, or "system"
    action: Mapped[str] = mapped_column(String(32))  # created, attached, categorised ...
    note: Mapped[str] = mapped_column(Text, default="")


class InboundMessage(Base):
    """Every push that changed something, keyed by its dedupe key, with the reply it got.

    The unique key is the last line of defence against WeChat's retries when Redis has forgotten them.
    """

    __tablename__ = "inbound_messages"

    dedupe_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    openid: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime]
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), nullable=True)
    reply: Mapped[str] = mapped_column(Text)


class IdBlock(Base):
    """Next free id per sequence; each process reserves a block at a time (see storage.ids)."""

    __tablename__ = "id_blocks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_value: Mapped[int] = mapped_column(BigInteger)
