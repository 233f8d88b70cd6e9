"""The committee console: dashboard, tickets (list, one ticket, its actions), the monthly report, the
community map, staff and invite codes, and the outbox's dead letters.

Every page starts from the viewer (a live console session) and their scope (storage.console.ticket_scope);
what is outside it is answered 404, as if it did not exist. Pages of capabilities still to come (wishes,
Party members' hours, proposals, votes, conventions) plug in with `register_section`.
"""
from __future__ import annotations

import csv
import io
import json
import re
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp_jinja2
import aiohttp_session
from aiohttp import web
from sqlalchemy import ColumnElement, select

import nlp
from bot.sender import dead_letters, retry_dead
from bot.web import CSRF, WEB
from handlers import console_login as auth
from bot.web.actions import ACTIONS, TARGETS, command_text, run_staff_command
from handlers import texts
from handlers.rates import Rates, percent
from handlers.report import TITLES, category_name, monthly
from storage import console as queries
from storage import reports
from storage.accounts import ROLE_NAMES, create_invite
from storage.community import import_households
from storage.models import Grid, InviteCode, Staff

CHINA = timedelta(hours=8)
PAGE_SIZE = 20
MONTHS_SHOWN = 12
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Viewer:
    openid: str
    roles: list[Staff]
    session_id: str

    @property
    def scope(self) -> ColumnElement[bool] | None:
        return queries.ticket_scope(self.roles)

    @property
    def is_admin(self) -> bool:
        return any(r.role == "admin" for r in self.roles)

    @property
    def supervises(self) -> bool:
        """Committees and admins may escalate (督办)."""
        return any(r.role in queries.BODIES or r.role == "admin" for r in self.roles)

    @property
    def name(self) -> str:
        return next((r.name for r in self.roles if r.name), "")

    @property
    def titles(self) -> str:
        return "、".join(dict.fromkeys(ROLE_NAMES.get(r.role, r.role) for r in self.roles))


@dataclass(frozen=True)
class Section:
    """A console page in the navigation: shown to viewers for whom `visible(viewer)` is true."""

    title: str
    path: str
    visible: Callable[[Viewer], bool] = lambda viewer: True


SECTIONS: list[Section] = [
    Section("概览", "/console"),
    Section("工单", "/console/tickets"),
    Section("月报", "/console/reports"),
    Section("社区", "/console/community", lambda v: v.is_admin),
]


def register_section(section: Section, add_routes: Callable[[web.Application], None], app: web.Application) -> None:
    """How a capability adds its console page (wishes, hours, proposals, votes, conventions): a navigation entry
    and its routes. Its handlers get the viewer with `await viewer(request)`."""
    SECTIONS.append(section)
    add_routes(app)


def service(request: web.Request):
    return request.app[WEB].service()


def now_of(request: web.Request) -> datetime:
    return service(request).ctx.now()


async def viewer(request: web.Request) -> Viewer:
    """The signed-in staff member, or a redirect to the page that says how to sign in."""
    session = await aiohttp_session.get_session(request)
    sid = session.get("sid")
    if sid:
        async with service(request).ctx.sessions() as db:
            found = await auth.session_staff(db, sid, now_of(request))
        if found:
            return Viewer(found[0], found[1], sid)
        session.pop("sid", None)
    raise web.HTTPSeeOther("/console/welcome")


def render(template: str, request: web.Request, v: Viewer | None, **values) -> web.Response:
    nav = [s for s in SECTIONS if v is not None and s.visible(v)]
    return aiohttp_jinja2.render_template(template, request, {
        "viewer": v, "nav": nav, "csrf": request.get(CSRF, ""), "path": request.path, **values})


# -- login ---------------------------------------------------------------------------------------------
async def welcome(request: web.Request) -> web.Response:
    return render("welcome.html", request, None)


async def login(request: web.Request) -> web.Response:
    web_app = request.app[WEB]
    started = await auth.use_login_link(service(request).ctx.sessions, request.query.get("token", ""),
                                        now_of(request), web_app.settings.session_hours)
    if started is None:
        response = render("welcome.html", request, None, expired=True)
        response.set_status(403)
        return response
    session = await aiohttp_session.new_session(request)  # a fresh cookie: nothing carried over from before
    session["sid"] = started.session_id
    session["csrf"] = auth.new_csrf_token()
    raise web.HTTPSeeOther("/console")


async def logout(request: web.Request) -> web.Response:
    v = await viewer(request)
    await auth.end_session(service(request).ctx.sessions, v.session_id, now_of(request))
    (await aiohttp_session.get_session(request)).invalidate()
    raise web.HTTPSeeOther("/console/welcome")


# -- dashboard --------------------------------------------------------------------------------------------
def month_of(at: datetime) -> str:
    return f"{at:%Y-%m}"


def months_back(now: datetime, count: int) -> list[str]:
    year, month = now.year, now.month
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return out[::-1]


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


async def dashboard(request: web.Request) -> web.Response:
    v = await viewer(request)
    now = now_of(request)
    months = months_back(now, MONTHS_SHOWN)
    start, end = reports.month_bounds(months[0])[0], reports.month_bounds(months[-1])[1]
    since = now - timedelta(days=30)
    async with service(request).ctx.sessions() as db:
        today = await queries.today(db, v.scope, queries.day_start_utc(now), now)
        by_month = await reports.counts_by_month(db, start, end, now, v.scope)
        categories = await queries.by_category(db, v.scope, since)
        heat = await queries.grid_heat(db, v.scope, since)
    lines = {name: [] for name in ("响应率", "解决率", "满意率", "按期办结率")}
    for month in months:
        r = Rates(*by_month.get(month, (0,) * 7))
        for name, value in zip(lines, (r.response_rate, r.resolution_rate, r.satisfaction_rate, r.on_time_rate)):
            lines[name].append(_rate(value))
    outlines = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": g.name}, "geometry": json.loads(g.polygon)}
        for g in heat if g.polygon]}
    charts = {
        "months": months, "rates": lines,
        "categories": [{"name": category_name(code), "value": n} for code, n in categories.items()],
        "grids": [{"name": g.name, "value": g.tickets, "hotspots": g.hotspots} for g in heat],
        "outlines": outlines if outlines["features"] else None,
    }
    return render("dashboard.html", request, v, today=today, charts=charts, heat=heat)


# -- tickets ---------------------------------------------------------------------------------------------
STATUS_CHOICES = {"": "全部状态", "open": "未办结", **{s: texts.STATUS_NAMES[s] for s in texts.STATUS_NAMES}}
SORT_CHOICES = {"new": "最新在前", "old": "最早在前", "due": "办结时限最近"}


def ticket_filter(query) -> tuple[queries.TicketFilter, dict[str, str]]:
    """The list's filter from the query string; unknown values are ignored (the form offers only good ones)."""
    raw = {k: query.get(k, "") for k in ("status", "category", "grid", "month", "overdue", "sort", "page")}
    grid = int(raw["grid"]) if raw["grid"].isdigit() else None
    month = reports.month_bounds(raw["month"]) if _MONTH.match(raw["month"]) else None
    page = int(raw["page"]) if raw["page"].isdigit() and 0 < int(raw["page"]) < 100_000 else 1
    f = queries.TicketFilter(
        status=raw["status"] if raw["status"] in STATUS_CHOICES else "",
        category=raw["category"] if raw["category"] in nlp.CATEGORIES else "",
        grid_id=grid, month=month, overdue=raw["overdue"] == "1",
        sort=raw["sort"] if raw["sort"] in SORT_CHOICES else "new", page=page)
    return f, raw


def local(at: datetime | None) -> str:
    return "" if at is None else f"{at + CHINA:%Y-%m-%d %H:%M}"


def ticket_view(row, grids: dict[int, str], now: datetime) -> dict:
    due = row.response_due if row.status == "dispatched" else row.resolve_due
    late = row.status in ("dispatched", "accepted", "reopened") and due is not None and due < now
    return {"number": row.number, "text": row.text, "category": category_name(row.category),
            "status": texts.STATUS_NAMES.get(row.status, row.status), "status_code": row.status,
            "grid": grids.get(row.grid_id, ""), "route": ROLE_NAMES.get(row.route, row.route),
            "created": local(row.created_at),
            "due": local(due), "late": late, "emergency": bool(row.emergency)}


async def tickets(request: web.Request) -> web.Response:
    v = await viewer(request)
    now = now_of(request)
    f, raw = ticket_filter(request.query)
    async with service(request).ctx.sessions() as db:
        page = await queries.ticket_page(db, v.scope, f, now, PAGE_SIZE)
        grids = await queries.grids_in_scope(db, v.roles)
        names = dict((await db.execute(select(Grid.id, Grid.name))).all())
    rows = [ticket_view(r, names, now) for r in page.rows]

    def link(**change) -> str:
        from urllib.parse import urlencode

        values = {k: val for k, val in {**raw, **change}.items() if val}
        return "?" + urlencode(values)

    return render("tickets.html", request, v, rows=rows, page=page, raw=raw, link=link,
                  statuses=STATUS_CHOICES, sorts=SORT_CHOICES, grids=grids,
                  categories={c.code: c.name for c in nlp.CATEGORIES.values()},
                  csv_link="/console/tickets.csv" + link(page=""))


def spreadsheet_safe(value: str) -> str:
    """A cell that starts like a formula is kept as text (CSV injection: =, +, -, @ run in spreadsheets)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


async def tickets_csv(request: web.Request) -> web.StreamResponse:
    v = await viewer(request)
    now = now_of(request)
    f, _ = ticket_filter(request.query)
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="tickets.csv"'})
    await response.prepare(request)
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(["编号", "提交时间", "类别", "状态", "网格", "承办单位", "时限", "内容"])
    await response.write(("\ufeff" + buffer.getvalue()).encode())  # the BOM: Excel reads UTF-8 then
    async with service(request).ctx.sessions() as db:
        names = dict((await db.execute(select(Grid.id, Grid.name))).all())
        async for row in queries.ticket_rows(db, v.scope, f, now):
            t = ticket_view(row, names, now)
            buffer.seek(0)
            buffer.truncate()
            out.writerow([t["number"], t["created"], t["category"], t["status"], t["grid"], t["route"], t["due"],
                          spreadsheet_safe(t["text"])])
            await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


async def ticket_page(request: web.Request) -> web.Response:
    v = await viewer(request)
    number = request.match_info["number"]
    async with service(request).ctx.sessions() as db:
        ticket = await queries.visible_ticket(db, v.scope, number)
        if ticket is None:
            raise web.HTTPNotFound(text="没有这个工单，或您无权查看。")
        events, attachments = await queries.ticket_timeline(db, ticket.id)
        names = dict((await db.execute(select(Grid.id, Grid.name))).all())
    session = await aiohttp_session.get_session(request)
    flash = session.pop("flash", None)
    timeline = [{"at": local(e.at), "what": texts.EVENT_NAMES.get(e.action, e.action), "note": e.note}
                for e in events]
    photos = [a for a in attachments if a.kind == "image" and a.url.startswith(("http://", "https://"))]
    others = [a for a in attachments if a not in photos]
    return render("ticket.html", request, v, t=ticket_view(ticket, names, now_of(request)), ticket=ticket,
                  timeline=timeline, photos=photos, others=others, flash=flash, targets=TARGETS,
                  nonce=uuid.uuid4().hex, route_names={k: ROLE_NAMES[k] for k in TARGETS})


async def ticket_action(request: web.Request) -> web.Response:
    v = await viewer(request)
    number = request.match_info["number"]
    form = await request.post()
    action = str(form.get("action", ""))
    async with service(request).ctx.sessions() as db:
        ticket = await queries.visible_ticket(db, v.scope, number)
    if ticket is None:
        raise web.HTTPNotFound(text="没有这个工单，或您无权查看。")
    if action not in ACTIONS or (action == "escalate" and not v.supervises):
        raise web.HTTPForbidden(text="不能这样操作。")
    text = command_text(action, number, words=str(form.get("words", "")), target=str(form.get("target", "")),
                        route=ticket.route)
    nonce = str(form.get("nonce", ""))
    if text is None or not re.fullmatch(r"[0-9a-f]{32}", nonce):
        raise web.HTTPBadRequest(text="表单不完整。")
    reply = await run_staff_command(service(request), v.openid, text, f"{v.openid}:{nonce}")
    (await aiohttp_session.get_session(request))["flash"] = reply
    raise web.HTTPSeeOther(f"/console/tickets/{number}")


# -- reports ---------------------------------------------------------------------------------------------
async def reports_page(request: web.Request) -> web.Response:
    v = await viewer(request)
    now = now_of(request)
    month = request.query.get("month", "")
    month = month if _MONTH.match(month) else month_of(now)
    async with service(request).ctx.sessions() as db:
        table = await monthly(db, month, now, v.scope)
    rows = {d: [(name, r, [percent(x) for x in (r.response_rate, r.resolution_rate, r.satisfaction_rate,
                                                  r.on_time_rate)]) for name, r in groups.items()]
            for d, groups in table.items()}
    return render("reports.html", request, v, month=month, months=months_back(now, MONTHS_SHOWN)[::-1],
                  rows=rows, titles=TITLES)


async def report_xlsx(request: web.Request) -> web.Response:
    from bot.web.exports import month_workbook

    v = await viewer(request)
    month = request.match_info["month"]
    if not _MONTH.match(month):
        raise web.HTTPNotFound()
    body = await month_workbook(service(request).ctx.sessions, month, now_of(request), v.scope)
    return web.Response(body=body, headers={
        "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "Content-Disposition": f'attachment; filename="linli-{month}.xlsx"'})


# -- community: households, staff and invite codes, dead letters (admins) -------------------------------------
async def admin(request: web.Request) -> Viewer:
    v = await viewer(request)
    if not v.is_admin:
        raise web.HTTPForbidden(text="只有社区管理员可以打开这一页。")
    return v


async def community(request: web.Request, **extra) -> web.Response:
    v = await admin(request)
    now = now_of(request)
    async with service(request).ctx.sessions() as db:
        grids = list((await db.execute(select(Grid).order_by(Grid.id))).scalars())
        staff = list((await db.execute(select(Staff).where(Staff.active.is_(True))
                                       .order_by(Staff.role, Staff.grid_id, Staff.id))).scalars())
        invites = list((await db.execute(select(InviteCode).where(
            InviteCode.used_by.is_(None), InviteCode.expires_at > now).order_by(InviteCode.created_at))).scalars())
    dead = await dead_letters(service(request).engine)
    session = await aiohttp_session.get_session(request)
    return render("community.html", request, v, grids={g.id: g.name for g in grids}, staff=staff, invites=invites,
                  dead=dead, roles=ROLE_NAMES, local=local, flash=session.pop("flash", None), **extra)


async def upload_households(request: web.Request) -> web.Response:
    await admin(request)
    upload = (await request.post()).get("file")
    if upload is None or not hasattr(upload, "file"):
        return await community(request, import_errors=["请选择一个户表 CSV 文件。"])
    with tempfile.TemporaryDirectory() as tmp:  # import_households reads a file (UTF-8 or GB18030)
        path = Path(tmp) / "households.csv"
        path.write_bytes(upload.file.read())
        report = await import_households(service(request).ctx.sessions, path)
    if not report.ok:
        return await community(request, import_errors=report.errors)
    await service(request).ctx.directory.changed(service(request).ctx.state)
    (await aiohttp_session.get_session(request))["flash"] = report.summary()
    raise web.HTTPSeeOther("/console/community")


async def new_invite(request: web.Request) -> web.Response:
    await admin(request)
    form = await request.post()
    role = str(form.get("role", ""))
    grid = str(form.get("grid", ""))
    flash = ""
    try:
        async with service(request).ctx.sessions() as db, db.begin():
            invite = await create_invite(db, role=role, now=now_of(request), grid_id=int(grid) if grid.isdigit() else None,
                                         is_head=form.get("head") == "1", name=str(form.get("name", ""))[:50])
        flash = f"邀请码：{invite.code}（{ROLE_NAMES[role]}，{local(invite.expires_at)} 前有效，只能用一次）"
    except ValueError as exc:
        flash = f"没有生成邀请码：{'网格员需要选择网格' if 'grid' in str(exc) else '身份不对'}"
    (await aiohttp_session.get_session(request))["flash"] = flash
    raise web.HTTPSeeOther("/console/community")


async def retry_letter(request: web.Request) -> web.Response:
    await admin(request)
    letter = request.match_info["id"]
    done = letter.isdigit() and await retry_dead(service(request).engine, int(letter), now_of(request))
    if done:
        service(request).notices.set()
    (await aiohttp_session.get_session(request))["flash"] = f"通知 #{letter} 已重新排队" if done else "这条通知不在死信里"
    raise web.HTTPSeeOther("/console/community")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/console", dashboard)
    r.add_get("/console/welcome", welcome)
    r.add_get(auth.LOGIN_PATH, login)
    r.add_post("/console/logout", logout)
    r.add_get("/console/tickets", tickets)
    r.add_get("/console/tickets.csv", tickets_csv)
    r.add_get("/console/tickets/{number:\\d+}", ticket_page)
    r.add_post("/console/tickets/{number:\\d+}/act", ticket_action)
    r.add_get("/console/reports", reports_page)
    r.add_get("/console/reports/{month}.xlsx", report_xlsx)
    r.add_get("/console/community", community)
    r.add_post("/console/community/households", upload_households)
    r.add_post("/console/community/invites", new_invite)
    r.add_post("/console/outbox/{id}/retry", retry_letter)
