"""派单: who handles a new ticket, from its category's route and the resident's grid.

首接负责: the body that receives a ticket owns it until it is resolved, reassigned or returned. A resident
who is not yet bound to a household (and sent no location inside a grid) goes to the duty desk (值班).
Emergencies reach the grid worker, the residents' committee head and the duty desk at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

import nlp
from handlers import ticket_rules
from storage.community import grid_at, household_place, resident_place as bound_place
from storage.models import Attachment, Grid, Staff

EMERGENCY_RESPONSE_HOURS = 2


@dataclass(frozen=True)
class Place:
    grid_id: int | None = None
    household_id: int | None = None


@dataclass(frozen=True)
class Plan:
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


def ticket_fields(plan_: Plan, place: Place, now: datetime, limits: tuple[float, float]) -> dict:
    response_due, resolve_due = ticket_rules.deadlines(now, *limits)
    return dict(route=plan_.route, grid_id=place.grid_id, household_id=place.household_id,
                status=ticket_rules.next_status("submitted", "dispatch"), dispatched_at=now,
                response_due=response_due, resolve_due=resolve_due)


def party_rows(ticket_id: int, plan_: Plan) -> list[dict]:
    return [dict(ticket_id=ticket_id, route=plan_.route, lead=True)] + [
        dict(ticket_id=ticket_id, route=r, lead=False) for r in plan_.co_routes]


async def resident_place(session: AsyncSession, openid: str, since: datetime) -> Place:
    """The bound household's grid; else the grid of a location the resident sent recently."""
    bound = await bound_place(session, openid)
    if bound:
        return Place(*bound)
    pin = (await session.execute(
        select(Attachment.latitude, Attachment.longitude).where(
            Attachment.openid == openid, Attachment.kind == "location", Attachment.created_at >= since)
        .order_by(Attachment.id.desc()).limit(1))).first()
    if pin and pin.latitude is not None:
        grid = await grid_at(session, pin.latitude, pin.longitude)
        if grid is not None:
            return Place(grid.id)
    return Place()


async def members(session: AsyncSession, routes: tuple[str, ...] | list[str], grid_id: int | None) -> list[Staff]:
    """Active staff of these bodies; grid workers only of this grid. 'X_head' means the heads of X.

    With nobody bound to the duty desk, community admins stand in for it.
    """
    wanted = set(routes)
    heads = {r.removesuffix("_head") for r in wanted if r.endswith("_head")}
    plain = {r for r in wanted if not r.endswith("_head")}
    if "duty_desk" in plain:
        plain.add("admin")
    conditions = []
    if plain - {"grid_worker"}:
        conditions.append(Staff.role.in_(plain - {"grid_worker"}))
    if "grid_worker" in plain and grid_id is not None:
        conditions.append((Staff.role == "grid_worker") & (Staff.grid_id == grid_id))
    if heads:
        conditions.append(Staff.role.in_(heads) & Staff.is_head.is_(True))
    if not conditions:
        return []
    rows = list((await session.execute(
        select(Staff).where(Staff.active.is_(True), or_(*conditions)).order_by(Staff.id))).scalars())
    if "duty_desk" in plain and any(s.role == "duty_desk" for s in rows):
        rows = [s for s in rows if s.role != "admin" or s.role in wanted]  # admins only stand in
    return rows


async def where(session: AsyncSession, place: Place) -> str:
    """Where a ticket is, as staff say it: "1号网格 3栋2单元501"."""
    grid = "" if place.grid_id is None else (await session.execute(
        select(Grid.name).where(Grid.id == place.grid_id))).scalar_one_or_none() or ""
    home = await household_place(session, place.household_id) if place.household_id is not None else None
    return " ".join(part for part in (grid, home.address if home else "") if part)
