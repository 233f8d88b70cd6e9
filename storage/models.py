"""Database tables. Times are naive UTC; the service shows them in China time (UTC+8)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.decimals import ExactDecimal

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    # Named constraints, so that migrations can alter them (SQLite rebuilds tables to do it).
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


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
    status: Mapped[str] = mapped_column(String(16), default="submitted")  # see handlers.ticket_rules
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Dispatch: the body that leads (a route code), where, and who accepted it.
    route: Mapped[str] = mapped_column(String(32), default="duty_desk")
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"), nullable=True, index=True)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), nullable=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True, index=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    response_due: Mapped[datetime | None] = mapped_column(nullable=True)
    resolve_due: Mapped[datetime | None] = mapped_column(nullable=True)
    # Follow-through: reminders and escalation (督办) levels already done, the resident's verdict.
    reminded: Mapped[bool] = mapped_column(Boolean, default=False)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    solved: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # 问题解决了吗
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1 满意 2 基本满意 3 不满意
    close_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)  # rated, unrated
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("clusters.id"), nullable=True, index=True)

    __table_args__ = (Index("ix_tickets_status_due", "status", "response_due", "resolve_due"),)


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


class Community(Base):
    __tablename__ = "communities"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    # What residents ask the account about the community itself (怎么联系居委会 / 几点上班): `linli community set`
    phone: Mapped[str] = mapped_column(String(40), default="", server_default="")
    office_hours: Mapped[str] = mapped_column(String(100), default="", server_default="")
    office_address: Mapped[str] = mapped_column(String(200), default="", server_default="")


class Grid(Base):
    """网格: ~300-500 households, one grid worker. `polygon` is GeoJSON, for location pins."""

    __tablename__ = "grids"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    polygon: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (UniqueConstraint("community_id", "code"),)


class Building(Base):
    __tablename__ = "buildings"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    name: Mapped[str] = mapped_column(String(32))  # "3栋"

    __table_args__ = (UniqueConstraint("community_id", "name"),)


class Household(Base):
    """户: one flat. `code` is the household code the community hands out for binding."""

    __tablename__ = "households"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id"), index=True)
    unit: Mapped[str] = mapped_column(String(16), default="")  # "2单元", or "" where buildings have none
    room: Mapped[str] = mapped_column(String(16))  # "501"
    floor_area: Mapped[Decimal] = mapped_column(ExactDecimal(10, 2), default=Decimal(0))  # exclusive area, m² (votes)
    code: Mapped[str] = mapped_column(String(16), unique=True)

    __table_args__ = (UniqueConstraint("building_id", "unit", "room"),)


class Resident(Base):
    """A person writing to the account, and the household they are bound to (if confirmed)."""

    __tablename__ = "residents"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), nullable=True, index=True)
    is_owner: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(String(50), default="")
    phone: Mapped[str] = mapped_column(String(20), default="")
    status: Mapped[str] = mapped_column(String(16), default="unbound")  # unbound, pending, bound
    bound_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime]


class Staff(Base):
    """A bound staff role of one person: grid worker, committee member, duty desk, admin, Party member."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(32))  # a route code (grid_worker, property, …), duty_desk, admin, party_member
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"), nullable=True)
    is_head: Mapped[bool] = mapped_column(Boolean, default=False)  # receives escalations (督办)
    name: Mapped[str] = mapped_column(String(50), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("openid", "role", "grid_id"),)


class InviteCode(Base):
    """A one-time code that binds a staff role when its holder sends it to the account."""

    __tablename__ = "invite_codes"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"), nullable=True)
    is_head: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(String(50), default="")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)


class TicketParty(Base):
    """Bodies a ticket is dispatched to: the lead, and co-handlers for 三方联动 matters."""

    __tablename__ = "ticket_parties"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    route: Mapped[str] = mapped_column(String(32), primary_key=True)
    lead: Mapped[bool] = mapped_column(Boolean, default=False)


class Cluster(Base):
    """Several households reporting the same thing in one grid within a window (a hot spot)."""

    __tablename__ = "clusters"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"), nullable=True)
    category: Mapped[str] = mapped_column(String(32))
    households: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    proposed_at: Mapped[datetime | None] = mapped_column(nullable=True)  # put to the committee as a 议题


class Proposal(Base):
    """议题: a matter put to residents' deliberation (四民工作法), raised by a resident, by the committee, or
    a hot spot that became a candidate. Its id is in the tickets' number space; see handlers.deliberation_rules
    for its statuses. A vote always belongs to a proposal (its matter)."""

    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=False)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))  # cluster, resident, committee
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("clusters.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    created_at: Mapped[datetime]
    text: Mapped[str] = mapped_column(Text, default="")
    # Where it belongs; a hot spot's candidate leaves these empty (its cluster's grid says where).
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id"), nullable=True, index=True)
    scope: Mapped[str] = mapped_column(String(16), default="community")  # community, grid, building
    scope_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the grid's or building's id
    proposer: Mapped[str | None] = mapped_column(String(64), nullable=True)  # openid of the resident
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), nullable=True)
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("proposals.id"), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")  # why declined or merged, told to the proposer
    updated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    reached_at: Mapped[datetime | None] = mapped_column(nullable=True)  # co-sign threshold: committee told


class Outbox(Base):
    """A notification to deliver, written in the same transaction as the change that causes it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    text: Mapped[str] = mapped_column(Text)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), nullable=True)
    about: Mapped[str] = mapped_column(String(64), default="", server_default="")  # "ticket:10003", "wish:…"
    ref: Mapped[str] = mapped_column(String(16), default="", server_default="")  # its number, as people read it
    phrase: Mapped[str] = mapped_column(String(8), default="", server_default="")  # its status word (≤ 5 chars)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, sent, kept, shown, dead
    channel: Mapped[str | None] = mapped_column(String(16), nullable=True)  # custom, template, kept
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)


class Lease(Base):
    """Who leads a singleton job (the scheduler) until when; taken over when it expires."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]


# ---- Micro-wishes (微心愿) and in-service Party members (在职党员): handlers/wishes.py, docs/wishes.md ----------

class PartyMember(Base):
    """A Party member's 报到: the community where they live (whose wish wall they see), work unit, what they offer.

    The party_member staff role (bound with an invite code) says who is a Party member; this row says where.
    """

    __tablename__ = "party_members"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    name: Mapped[str] = mapped_column(String(50), default="")
    unit: Mapped[str] = mapped_column(String(100), default="")  # 工作单位
    skills: Mapped[str] = mapped_column(String(200), default="")
    time_offered: Mapped[str] = mapped_column(String(100), default="")
    registered_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Wish(Base):
    """微心愿: a resident's small need, reviewed by the community, claimed and fulfilled by Party members.

    `id` comes from the tickets' id sequence (one number space), `number` is read aloud. `text` is what the
    resident wrote, `public_text` what the wall shows (the reviewer may edit it). Status: handlers.wish_rules.
    """

    __tablename__ = "wishes"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=False)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id"))
    text: Mapped[str] = mapped_column(Text)
    public_text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True)  # material, service, public
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    review_due: Mapped[datetime]
    reviewed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reject_reason: Mapped[str] = mapped_column(Text, default="")
    approved_at: Mapped[datetime | None] = mapped_column(nullable=True)  # on the wall since (newest first)
    # The current claim: claim_round counts claims (a released claim's claimers keep their old round).
    claim_round: Mapped[int] = mapped_column(Integer, default=0)
    group_claim: Mapped[bool] = mapped_column(Boolean, default=False)
    claimer_count: Mapped[int] = mapped_column(Integer, default=0)  # a guarded update keeps a group within its cap
    claimed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    progress_at: Mapped[datetime | None] = mapped_column(nullable=True)  # the claimers' last step
    fulfilled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    close_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)  # confirmed, unconfirmed
    # Chasing the current stage (review, claim, confirmation); reset whenever the stage changes.
    reminded: Mapped[bool] = mapped_column(Boolean, default=False)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    story: Mapped[str] = mapped_column(Text, default="")  # 说明 of the fulfilment, kept for publicity
    minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the group's reported time
    shared_phone: Mapped[str] = mapped_column(String(20), default="")  # 同意留电话: shown to the claimers
    phone_shared_at: Mapped[datetime | None] = mapped_column(nullable=True)

    __table_args__ = (Index("ix_wishes_status_community", "status", "community_id"),)


class WishEvent(Base):
    """Append-only timeline of a wish: who did what, when and why."""

    __tablename__ = "wish_events"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    wish_id: Mapped[int] = mapped_column(ForeignKey("wishes.id"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))  # an openid, "system", or "cli"
    action: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")


class WishClaimer(Base):
    """A Party member in a wish's claim: the one who claimed (`lead`) and those who joined a group claim.

    `minutes` is their share of the reported time (handlers.wish_rules.share_minutes); it counts once the
    wish is closed. A released claim keeps its rows (released_at set) as the member's history.
    """

    __tablename__ = "wish_claimers"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    wish_id: Mapped[int] = mapped_column(ForeignKey("wishes.id"))
    round: Mapped[int] = mapped_column(Integer)
    openid: Mapped[str] = mapped_column(String(64), index=True)
    lead: Mapped[bool] = mapped_column(Boolean, default=False)
    joined_at: Mapped[datetime]
    released_at: Mapped[datetime | None] = mapped_column(nullable=True)
    minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (UniqueConstraint("wish_id", "round", "openid"),)


class WishPhoto(Base):
    """A picture of a wish: the resident's (`wish`) or the fulfilment's proof (`proof`, with the story)."""

    __tablename__ = "wish_photos"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    wish_id: Mapped[int] = mapped_column(ForeignKey("wishes.id"), index=True)
    openid: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(16))  # wish, proof
    media_id: Mapped[str] = mapped_column(String(200), default="")
    url: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime]


# ---- the web face: console logins and sessions, Open311 clients (bot/web, storage/console.py) -------------

class ConsoleLink(Base):
    """A one-time login link for the console: only the token's SHA-256 is kept; used once, within minutes."""

    __tablename__ = "console_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    openid: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ConsoleSession(Base):
    """A console session, checked on every request (the cookie only names it), so it can be ended
    server-side: `退出后台` ends all of a person's sessions."""

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie's session id
    openid: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Open311Client(Base):
    """A client of the Open311 API and the SHA-256 of its key (the key itself is shown once)."""

    __tablename__ = "open311_clients"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class WebSecret(Base):
    """Secrets the web face generates for itself (the session cookies' key when LINLI_CONSOLE_SECRET is unset),
    shared by every process through the database."""

    __tablename__ = "web_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


# The console's ticket list (filters by status, grid, category, month; newest first) and the monthly report
# (tickets dispatched in a month): see storage/console.py and storage/reports.py, and `linli bench console`.
Index("ix_tickets_created_at", Ticket.created_at)
Index("ix_tickets_status_created_at", Ticket.status, Ticket.created_at)
Index("ix_tickets_grid_id_created_at", Ticket.grid_id, Ticket.created_at)
Index("ix_tickets_category_created_at", Ticket.category, Ticket.created_at)
Index("ix_tickets_dispatched_at", Ticket.dispatched_at)

# ---- Deliberation and votes (四民工作法: 民事民提、议、决、办、评; handlers.proposals, handlers.votes) -------------

class Owner(Base):
    """业主: one owner in a community's owners' register (imported, never self-declared). `register_id` is the
    register's id of the person or company (the developer is one id, so its unsold flats count once)."""

    __tablename__ = "owners"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    register_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    code: Mapped[str] = mapped_column(String(16), unique=True)  # 业主码: sent to the account, binds the owner
    openid: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    bound_at: Mapped[datetime | None] = mapped_column(nullable=True)

    __table_args__ = (UniqueConstraint("community_id", "register_id"),)


class OwnerFlat(Base):
    """One line of the register: this owner holds (a share of) this flat. Two owners of one flat co-own it."""

    __tablename__ = "owner_flats"

    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), primary_key=True, index=True)


class DeliberationSettings(Base):
    """A community's rules of order; an empty column keeps the default (handlers.deliberation_rules.Order)."""

    __tablename__ = "deliberation_settings"

    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), primary_key=True)
    cosign_households: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cosign_percent: Mapped[Decimal | None] = mapped_column(ExactDecimal(5, 2), nullable=True)
    comments_per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    comment_chars: Mapped[int | None] = mapped_column(Integer, nullable=True)
    objection_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remind_hours: Mapped[int | None] = mapped_column(Integer, nullable=True)


class BuildingCaptain(Base):
    """楼栋长: a resident who follows participation in their building while a vote runs (who has voted, never how)."""

    __tablename__ = "building_captains"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(50), default="")
    created_at: Mapped[datetime]


class Cosignature(Base):
    """附议: one household's support of a proposal (the unique key keeps it to one per household)."""

    __tablename__ = "cosignatures"

    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), primary_key=True)
    openid: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class Comment(Base):
    """发言 on a proposal. (proposal, person, China day, slot) is unique: slots 1..limit settle the day's limit
    under concurrency. Staff may hide one; the text and the reason stay on the record."""

    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    openid: Mapped[str] = mapped_column(String(64))
    day: Mapped[str] = mapped_column(String(10))  # China date, 2026-12-01
    slot: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]
    hidden_at: Mapped[datetime | None] = mapped_column(nullable=True)
    hidden_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hidden_reason: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (UniqueConstraint("proposal_id", "openid", "day", "slot"),)


class Meeting(Base):
    """议事会议: time, place, sign-ins, minutes (纪要) and the options it settled for the vote."""

    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=False)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    starts_at: Mapped[datetime]
    place: Mapped[str] = mapped_column(String(200))
    minutes: Mapped[str] = mapped_column(Text, default="")
    minutes_at: Mapped[datetime | None] = mapped_column(nullable=True)
    options: Mapped[str] = mapped_column(Text, default="")  # JSON list of the options recorded for the vote
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class MeetingSignIn(Base):
    __tablename__ = "meeting_signins"

    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"), primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), nullable=True)
    at: Mapped[datetime]


class Vote(Base):
    """表决 on a proposal. The roll (vote_parts, vote_voters) is fixed when it opens; `result` is the JSON of
    handlers.tally.result_json, stored at the close and never changed after."""

    __tablename__ = "votes"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=False)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"))
    title: Mapped[str] = mapped_column(String(200))
    options: Mapped[str] = mapped_column(Text)  # JSON list; option 1 is the motion (同意)
    scope: Mapped[str] = mapped_column(String(16), default="community")  # community, grid, building
    scope_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    unit: Mapped[str] = mapped_column(String(16))  # resident, household, owners
    rule: Mapped[str] = mapped_column(String(24))  # simple, art278-ordinary, art278-major, budget
    quorum: Mapped[str] = mapped_column(String(16), default="")  # simple/budget: a Threshold, e.g. >=1/2
    approval: Mapped[str] = mapped_column(String(16), default="")  # simple: e.g. >1/2
    budget: Mapped[Decimal | None] = mapped_column(ExactDecimal(14, 2), nullable=True)
    secret: Mapped[bool] = mapped_column(Boolean, default=False)
    advisory: Mapped[bool] = mapped_column(Boolean, default=False)  # 征询: counted, binding nobody
    convention: Mapped[str] = mapped_column(Text, default="")  # the 微公约 this vote adopts if it passes
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    objection_days: Mapped[int] = mapped_column(Integer, default=7)
    objection_until: Mapped[datetime | None] = mapped_column(nullable=True)
    finalised_at: Mapped[datetime | None] = mapped_column(nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(nullable=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_votes_status_closes", "status", "closes_at"),)


class VoteVoter(Base):
    """A voting unit on a vote's roll: an art. 9 owner ("o<first flat>"), a household ("h<id>") or a resident
    ("r<openid>"). `open` is cleared by the close, and every ballot's guard needs it: a ballot racing the
    close either commits before it (and counts) or is refused."""

    __tablename__ = "vote_voters"

    vote_id: Mapped[int] = mapped_column(ForeignKey("votes.id"), primary_key=True)
    voter: Mapped[str] = mapped_column(String(80), primary_key=True)
    open: Mapped[bool] = mapped_column(Boolean, default=True)
    voted_at: Mapped[datetime | None] = mapped_column(nullable=True)  # participation: who has voted


class VotePart(Base):
    """One exclusive part (or, in a vote of residents, one resident) on the roll, with its area."""

    __tablename__ = "vote_parts"

    vote_id: Mapped[int] = mapped_column(ForeignKey("votes.id"), primary_key=True)
    part: Mapped[str] = mapped_column(String(80), primary_key=True)  # "h<household id>" or "r<openid>"
    voter: Mapped[str] = mapped_column(String(80))
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), nullable=True)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id"), nullable=True)
    area: Mapped[Decimal] = mapped_column(ExactDecimal(10, 2), default=Decimal(0))


class VoteHolder(Base):
    """Who may cast for an owners' voting unit: the register's owners of it when the vote opened."""

    __tablename__ = "vote_holders"

    vote_id: Mapped[int] = mapped_column(ForeignKey("votes.id"), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"), primary_key=True)
    voter: Mapped[str] = mapped_column(String(80), primary_key=True)


class Ballot(Base):
    """The counted ballot of one voting unit: ONE row per unit (the primary key decides under concurrency),
    replaced in place by a later ballot; every ballot cast is also in ballot_history."""

    __tablename__ = "ballots"

    vote_id: Mapped[int] = mapped_column(ForeignKey("votes.id"), primary_key=True)
    voter: Mapped[str] = mapped_column(String(80), primary_key=True)
    choice: Mapped[int] = mapped_column(Integer)  # 0 in a budget vote
    picks: Mapped[str] = mapped_column(String(200), default="")  # budget: "1,3"
    receipt: Mapped[str] = mapped_column(String(16))
    cast_at: Mapped[datetime]
    channel: Mapped[str] = mapped_column(String(8))  # wechat, paper


class BallotRecord(Base):
    """Every ballot cast, for audit: the counted one is the unit's latest (cast_at, receipt). In a secret vote
    `cast_by` stays empty (see docs/deliberation.md for who can still link a ballot to a voter)."""

    __tablename__ = "ballot_history"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    vote_id: Mapped[int] = mapped_column(ForeignKey("votes.id"), index=True)
    voter: Mapped[str] = mapped_column(String(80))
    choice: Mapped[int] = mapped_column(Integer)
    picks: Mapped[str] = mapped_column(String(200), default="")
    receipt: Mapped[str] = mapped_column(String(16))
    cast_at: Mapped[datetime]
    channel: Mapped[str] = mapped_column(String(8))
    cast_by: Mapped[str] = mapped_column(String(64), default="")  # openid (named votes)
    entered_by: Mapped[str] = mapped_column(String(64), default="")  # staff who entered a paper ballot

    __table_args__ = (UniqueConstraint("vote_id", "receipt"),)


class BudgetProject(Base):
    """惠民项目: one project of a budget vote, with its cost."""

    __tablename__ = "budget_projects"

    vote_id: Mapped[int] = mapped_column(ForeignKey("votes.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1..n, as voters choose them
    title: Mapped[str] = mapped_column(String(200))
    cost: Mapped[Decimal] = mapped_column(ExactDecimal(14, 2))


class Objection(Base):
    """异议 during a result's objection window (公示期), and the committee's answer."""

    __tablename__ = "objections"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    vote_id: Mapped[int] = mapped_column(ForeignKey("votes.id"), index=True)
    openid: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    answered_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Convention(Base):
    """微公约: a rule residents adopted by a vote."""

    __tablename__ = "conventions"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"))
    vote_id: Mapped[int] = mapped_column(ForeignKey("votes.id"), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    adopted_at: Mapped[datetime]


class DeliberationTask(Base):
    """民事民办: a decision's task is a ticket (intent "task") dispatched to the responsible body, so its time
    limits, reminders, escalation and rates are the tickets' own; this row links it to its matter."""

    __tablename__ = "deliberation_tasks"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    vote_id: Mapped[int | None] = mapped_column(ForeignKey("votes.id"), nullable=True)


class OutcomeRating(Base):
    """民事民评: a voter's rating of how the decision was carried out (1 满意 2 基本满意 3 不满意)."""

    __tablename__ = "outcome_ratings"

    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    rating: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]


class DeliberationEvent(Base):
    """The matter's append-only timeline: the proposal's steps, its meetings, votes (paper ballots entered,
    objections and answers) and tasks, each with who, when and why."""

    __tablename__ = "deliberation_events"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    vote_id: Mapped[int | None] = mapped_column(ForeignKey("votes.id"), nullable=True, index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))  # an openid, a staff name, or "system"
    action: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
