"""派单: who handles a new ticket, from its category's route and the resident's grid.

首接负责: the body that receives a ticket owns it until it is resolved, reassigned or returned. A resident
who is not yet bound to a household (and sent no location inside a grid) goes to the duty desk (值班).
Emergencies reach the grid worker, the residents' committee head and the duty desk at once.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import nlp
from handlers import texts, ticket_rules
from handlers.notify import Subject, notify
from storage.community import bound_homes, grid_at, household_place
from storage.models import Attachment, Grid, Staff
from storage.writer import Unit

EMERGENCY_RESPONSE_HOURS = 2


class Place(NamedTuple):  # named tuples: made for every new ticket, at a third of a frozen dataclass's cost
    grid_id: int | None = None
    household_id: int | None = None


class Plan(NamedTuple):
    route: str  # the lead body
    co_routes: tuple[str, ...] = ()  # 三方联动 co-handlers
    alert_routes: tuple[str, ...] = ()  # told at once, without owning the ticket (emergencies)


def plan(category: nlp.Category, place: Place, emergency: str | None) -> Plan:
    """Pure routing rule: the category's route where the grid is known, else the duty desk."""
    if place.grid_id is None:
        lead, co = "duty_desk", ()
    else:
        lead, co = category.route, tuple(r for r in category.co_routes if r != category.route)
    alerts = ("grid_worker", "residents_committee_head", "duty_desk") if emergency else ()
    return Plan(lead, co, tuple(a for a in alerts if a != lead))


def time_limits(category: nlp.Category, emergency: str | None,
                overrides: dict[str, tuple[float, float]]) -> tuple[float, float]:
    response, resolve = overrides.get(category.code, (category.response_hours, category.resolve_hours))
    if emergency:
        response = min(response, EMERGENCY_RESPONSE_HOURS)
    return response, resolve


def fresh_deadlines(ticket, now: datetime, overrides: dict[str, tuple[float, float]]) -> dict:
    """response_due and resolve_due counted afresh from now, by the ticket's category and urgency (a ticket
    handed to another body, or reopened by the resident)."""
    category = nlp.CATEGORIES.get(ticket.category, nlp.CATEGORIES["other"])
    response_due, resolve_due = ticket_rules.deadlines(now, *time_limits(category, ticket.emergency, overrides))
    return dict(response_due=response_due, resolve_due=resolve_due)


def ticket_fields(plan_: Plan, place: Place, now: datetime, limits: tuple[float, float]) -> dict:
    response_due, resolve_due = ticket_rules.deadlines(now, *limits)
    return dict(route=plan_.route, grid_id=place.grid_id, household_id=place.household_id,
                status=ticket_rules.next_status("submitted", "dispatch"), dispatched_at=now,
                response_due=response_due, resolve_due=resolve_due)


def party_rows(ticket_id: int, plan_: Plan) -> list[dict]:
    return [dict(ticket_id=ticket_id, route=plan_.route, lead=True)] + [
        dict(ticket_id=ticket_id, route=r, lead=False) for r in plan_.co_routes]


async def pinned_place(session: AsyncSession, openid: str, since: datetime) -> Place:
    """The grid of the last location the resident sent since then, if it lies in one."""
    pin = (await session.execute(
        select(Attachment.latitude, Attachment.longitude).where(
            Attachment.openid == openid, Attachment.kind == "location", Attachment.created_at >= since)
        .order_by(Attachment.id.desc()).limit(1))).first()
    if pin and pin.latitude is not None:
        grid = await grid_at(session, pin.latitude, pin.longitude)
        if grid is not None:
            return Place(grid.id)
    return Place()


def select_members(staff: list[Staff], routes: tuple[str, ...] | list[str], grid_id: int | None) -> list[Staff]:
    """The active staff of these bodies; grid workers only of this grid. 'X_head' means the heads of X.

    With nobody bound to the duty desk, community admins stand in for it.
    """
    wanted = set(routes)
    heads = {r.removesuffix("_head") for r in wanted if r.endswith("_head")}
    plain = wanted - {r for r in wanted if r.endswith("_head")}
    stand_in = "duty_desk" in plain and not any(s.role == "duty_desk" for s in staff if s.active)

    def chosen(s: Staff) -> bool:
        if not s.active:
            return False
        if s.role == "grid_worker":
            return "grid_worker" in plain and grid_id is not None and s.grid_id == grid_id
        return s.role in plain or (s.role in heads and s.is_head) or (stand_in and s.role == "admin")

    return [s for s in staff if chosen(s)]


async def active_staff(session: AsyncSession) -> list[Staff]:
    return list((await session.execute(select(Staff).where(Staff.active.is_(True)).order_by(Staff.id))).scalars())


async def members(session: AsyncSession, routes: tuple[str, ...] | list[str], grid_id: int | None) -> list[Staff]:
    """select_members over the staff table as it is now (the staff table is small: one query, no cache)."""
    return select_members(await active_staff(session), routes, grid_id)


def ticket_subject(ticket_id: int, number: str, status: str) -> Subject:
    """What a notice about a ticket is about: its number and status word show in a template message."""
    return Subject("ticket", ticket_id, number, texts.STATUS_WORDS.get(status, "通知"))


def notify_new_ticket(unit: Unit, staff, lead_route: str, *, number: str, category_name: str, text: str, where: str,
                      response_hours: float, households: int, emergency: str | None, now: datetime,
                      about: Subject) -> None:
    """【新工单】 to the lead body (and the admins standing in), 【协办】 to co-handlers; 【紧急】 first when it is."""
    for member in staff:
        lead = member.role in (lead_route, "admin")  # admins take the lead where they stand in for a body
        notify(unit, member.openid, texts.new_ticket_notice(number, category_name, text, where, response_hours,
                                                            households, lead=lead, emergency=bool(emergency)),
               now, about=about)


@dataclass(frozen=True)
class Home:
    grid_id: int
    household_id: int
    where: str  # "1号网格 3栋2单元501"


async def supervisors(session: AsyncSession, route: str, grid_id: int | None) -> list[Staff]:
    """Who is told when a ticket is overdue (督办) or reopened: the heads of its body, or the residents'
    committee's heads for grid work and for a body without a head."""
    heads = await members(session, (route + "_head",), grid_id) if route != "grid_worker" else []
    return heads or await members(session, ("residents_committee_head",), grid_id)


class Directory:
    """Staff and residents' confirmed homes, kept in memory for the webhook's hot path.

    Only routing reads it (whom a new ticket goes to, and where the resident lives); what staff may do is
    always checked against the database. Every change of a binding sets a new version in the shared state,
    which each message reads ahead anyway: every process reloads before it routes its next ticket.
    Without shared state (Redis restarting), the copy is at most `ttl_s` old.
    """

    VERSION_KEY = "directory:version"

    def __init__(self, sessions, ttl_s: float = 15, clock=time.monotonic) -> None:
        self._sessions, self._ttl_s, self._clock = sessions, ttl_s, clock
        self._staff: list[Staff] = []
        self._staff_openids: frozenset[str] = frozenset()
        self._homes: dict[str, Home] = {}
        self._members: dict[tuple, tuple[Staff, ...]] = {}  # (routes, grid) -> select_members, until the next load
        self._loaded_at: float | None = None
        self._version: str | None = None
        self._generation = 0  # moves on with every invalidation: a load that began before it is stale at once
        self._loading: asyncio.Task | None = None

    def note_version(self, version: str | None) -> None:
        if version is not None and version != self._version:
            self._version = version
            self.invalidate()

    def invalidate(self) -> None:
        self._loaded_at = None
        self._generation += 1

    async def changed(self, state) -> None:
        """A role or a binding changed: every process reloads before routing again."""
        self.invalidate()
        await state.set(self.VERSION_KEY, uuid.uuid4().hex, 365 * 86400)

    async def members(self, routes: tuple[str, ...], grid_id: int | None) -> tuple[Staff, ...]:
        if not routes:
            return ()
        if self._stale():
            await self._reload()
        key = (routes, grid_id)
        if (found := self._members.get(key)) is None:
            found = self._members[key] = tuple(select_members(self._staff, routes, grid_id))
        return found

    async def is_staff(self, openid: str) -> bool:
        """Whether this person holds an active staff role (routing's question; permissions ask the database)."""
        if self._stale():
            await self._reload()
        return openid in self._staff_openids

    async def home(self, openid: str) -> Home | None:
        if self._stale():
            await self._reload()
        return self._homes.get(openid)

    def _stale(self) -> bool:
        return self._loaded_at is None or self._clock() - self._loaded_at > self._ttl_s

    async def _reload(self) -> None:
        """One load at a time: the burst of messages that finds the copy stale (every message after a quiet
        spell longer than ttl_s) waits for the same load instead of running a query each, all at once."""
        if self._loading is None:
            self._loading = asyncio.get_running_loop().create_task(self._load())
            self._loading.add_done_callback(self._loaded)
        await asyncio.shield(self._loading)  # a message that gives up waiting does not cancel the others' load

    def _loaded(self, task: asyncio.Task) -> None:
        self._loading = None
        if not task.cancelled():
            task.exception()  # retrieved: each waiter has it raised; none left means nobody needed it

    async def _load(self) -> None:
        generation = self._generation
        async with self._sessions() as session:
            staff = await active_staff(session)
            homes = {openid: Home(grid_id, household_id, where)
                     for openid, grid_id, household_id, where in await bound_homes(session)}
        self._staff, self._homes, self._members = staff, homes, {}
        self._staff_openids = frozenset(s.openid for s in staff)
        if generation == self._generation:  # nothing changed while we read
            self._loaded_at = self._clock()


async def where(session: AsyncSession, place: Place) -> str:
    """Where a ticket is, as staff say it: "1号网格 3栋2单元501"."""
    grid = "" if place.grid_id is None else (await session.execute(
        select(Grid.name).where(Grid.id == place.grid_id))).scalar_one_or_none() or ""
    home = await household_place(session, place.household_id) if place.household_id is not None else None
    return " ".join(part for part in (grid, home.address if home else "") if part)
