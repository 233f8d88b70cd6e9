"""Fixtures' helpers for the web face's tests: a service with the WeChat stand-in, people, tickets, logins."""
from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

from sqlalchemy import select

from bot.app import SERVICE
from bot.web import WEB
from handlers.console_login import make_login_link
from handlers.context import utcnow
from storage.community import seed_demo
from storage.ids import ticket_number
from storage.models import Grid, Staff, Ticket, TicketEvent

PEOPLE = {"张阿姨": "r-zhang", "李大爷": "r-li", "王网格员": "s-wang", "陈主任": "s-chen", "刘党员": "s-liu"}
HOSTILE = '<script>alert("x")</script>=HYPERLINK("http://evil","点我")'


async def seed_people(service) -> dict[str, int]:
    """The demo community and people, plus an admin and grid 2's worker; returns grid code -> id."""
    await seed_demo(service.engine, PEOPLE)
    async with service.ctx.sessions() as session, session.begin():
        grids = {g.code: g.id for g in (await session.execute(select(Grid))).scalars()}
        now = utcnow()
        session.add(Staff(openid="s-admin", role="admin", name="赵管理员", active=True, created_at=now))
        session.add(Staff(openid="s-zhou", role="grid_worker", grid_id=grids["2"], name="周网格员", active=True,
                          created_at=now))
    await service.ctx.directory.changed(service.ctx.state)
    return grids


_next_id = [500_000]


async def make_ticket(service, *, grid_id, route="grid_worker", text="路灯坏了", openid="r-zhang",
                      category="facilities", status="dispatched", created=None) -> str:
    _next_id[0] += 1
    ticket_id = _next_id[0]
    now = created or utcnow()
    async with service.ctx.sessions() as session, session.begin():
        session.add(Ticket(id=ticket_id, number=ticket_number(ticket_id), openid=openid, text=text, category=category,
                           confidence=1.0, keywords="", intent="complaint", status=status, created_at=now,
                           updated_at=now, route=route, grid_id=grid_id, dispatched_at=now,
                           response_due=now + timedelta(hours=24), resolve_due=now + timedelta(days=7)))
        session.add(TicketEvent(ticket_id=ticket_id, at=now, actor=openid, action="created", note=""))
    return ticket_number(ticket_id)


async def login(client, openid: str) -> None:
    """Sign this person in (a fresh cookie jar first) by a one-time link."""
    client.session.cookie_jar.clear()
    service = client.app[SERVICE]
    link = await make_login_link(service.ctx.sessions, openid, service.ctx.now(), "")
    resp = await client.get(link, allow_redirects=False)
    assert resp.status == 303, await resp.text()


async def csrf(client, path: str = "/console/tickets") -> str:
    page = await (await client.get(path)).text()
    return re.search(r'name="_csrf" value="([^"]+)"', page).group(1)


def set_public_url(client) -> None:
    web_app = client.app[WEB]
    web_app.settings = dataclasses.replace(web_app.settings, public_url=str(client.make_url("")).rstrip("/"))
