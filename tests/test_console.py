"""The committee console: login links and sessions, CSRF, who sees what, actions through the chat's handlers,
escaping, exports; the SQL monthly report against the pure rules."""
from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import datetime, timedelta

import openpyxl
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from sqlalchemy import insert, select

from bot.app import SERVICE, create_app
from handlers import console_login as auth
from bot.web.actions import command_text
from handlers.rates import Facts, rates
from handlers.report import monthly, render
from storage import reports
from storage.ids import ticket_number
from storage.models import Outbox, Ticket
from tests.conftest import WeChat
from tests.web_support import HOSTILE, PEOPLE, csrf, login, make_ticket, seed_people


@pytest.fixture
async def web(settings, clock):
    app = create_app(settings, clock=clock, migrate=True, state_prefix=f"linli-test-{uuid.uuid4().hex}:",
                     background=False)
    async with TestClient(TestServer(app)) as c:
        c.grids = await seed_people(c.app[SERVICE])
        yield c


# -- login links and sessions ------------------------------------------------------------------------------
async def test_a_login_link_works_once_and_within_ten_minutes(web):
    service = web.app[SERVICE]
    now = service.ctx.now()
    link = await auth.make_login_link(service.ctx.sessions, PEOPLE["王网格员"], now, "https://linli.example")
    assert link.startswith("https://linli.example/console/login?token=")
    token = link.split("token=")[1]
    assert await auth.use_login_link(service.ctx.sessions, token, now, 12) is not None
    assert await auth.use_login_link(service.ctx.sessions, token, now, 12) is None  # spent
    late = await auth.make_login_link(service.ctx.sessions, PEOPLE["王网格员"], now, "")
    token = late.split("token=")[1]
    assert await auth.use_login_link(service.ctx.sessions, token, now + timedelta(minutes=10, seconds=1), 12) is None
    with pytest.raises(auth.NoConsoleRole):  # residents and Party members have no console
        await auth.make_login_link(service.ctx.sessions, PEOPLE["刘党员"], now, "")
    with pytest.raises(auth.NoConsoleRole):
        await auth.make_login_link(service.ctx.sessions, PEOPLE["张阿姨"], now, "")


async def test_login_page_refuses_a_spent_link_and_pages_need_a_session(web):
    resp = await web.get("/console/tickets", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/welcome"
    service = web.app[SERVICE]
    link = await auth.make_login_link(service.ctx.sessions, PEOPLE["王网格员"], service.ctx.now(), "")
    assert (await web.get(link, allow_redirects=False)).status == 303
    assert (await web.get("/console/tickets")).status == 200
    web.session.cookie_jar.clear()
    resp = await web.get(link)
    assert resp.status == 403 and "已失效" in await resp.text()


async def test_ending_sessions_ends_all_of_them_server_side(web):
    service = web.app[SERVICE]
    sessions = service.ctx.sessions
    now = service.ctx.now()
    first = await auth.use_login_link(sessions, (await auth.make_login_link(
        sessions, PEOPLE["陈主任"], now, "")).split("token=")[1], now, 12)
    await login(web, PEOPLE["陈主任"])  # a second session, in the test client's cookie
    assert (await web.get("/console/tickets", allow_redirects=False)).status == 200
    assert await auth.end_sessions(sessions, PEOPLE["陈主任"], now) == 2  # 退出后台
    assert (await web.get("/console/tickets", allow_redirects=False)).status == 303  # the cookie is still there
    async with sessions() as db:
        assert await auth.session_staff(db, first.session_id, now) is None


async def test_sessions_expire(web):
    service = web.app[SERVICE]
    now = service.ctx.now()
    started = await auth.use_login_link(service.ctx.sessions, (await auth.make_login_link(
        service.ctx.sessions, PEOPLE["王网格员"], now, "")).split("token=")[1], now, 12)
    async with service.ctx.sessions() as db:
        assert await auth.session_staff(db, started.session_id, now + timedelta(hours=11)) is not None
        assert await auth.session_staff(db, started.session_id, now + timedelta(hours=12)) is None


async def test_every_post_needs_the_csrf_token(web):
    number = await make_ticket(web.app[SERVICE], grid_id=web.grids["1"])
    await login(web, PEOPLE["王网格员"])
    resp = await web.post(f"/console/tickets/{number}/act", data={"action": "accept", "nonce": uuid.uuid4().hex})
    assert resp.status == 403
    resp = await web.post("/console/logout", data={"_csrf": "forged"})
    assert resp.status == 403
    token = await csrf(web)
    assert (await web.post("/console/logout", data={"_csrf": token}, allow_redirects=False)).status == 303
    assert (await web.get("/console/tickets", allow_redirects=False)).status == 303


# -- who sees what -----------------------------------------------------------------------------------------
async def test_each_role_sees_its_own_scope_and_nothing_else(web):
    service, grids = web.app[SERVICE], web.grids
    in_one = await make_ticket(service, grid_id=grids["1"], text="一号网格的路灯")
    in_two = await make_ticket(service, grid_id=grids["2"], text="二号网格的垃圾", category="environment")
    committee = await make_ticket(service, grid_id=grids["2"], route="residents_committee", text="独居老人要帮忙",
                                  category="elderly")
    cases = {
        "s-admin": {in_one, in_two, committee},
        PEOPLE["王网格员"]: {in_one},
        "s-zhou": {in_two, committee},  # grid workers see their whole grid
        PEOPLE["陈主任"]: {committee},
    }
    for openid, visible in cases.items():
        await login(web, openid)
        page = await (await web.get("/console/tickets")).text()
        listed = set(re.findall(r'/console/tickets/(\d+)"', page))
        assert listed == visible, openid
        for number in {in_one, in_two, committee} - visible:  # a direct URL to another scope's ticket
            resp = await web.get(f"/console/tickets/{number}")
            assert resp.status == 404 and "路灯" not in await resp.text() and "垃圾" not in await resp.text()
            resp = await web.post(f"/console/tickets/{number}/act", data={
                "_csrf": await csrf(web), "action": "accept", "nonce": uuid.uuid4().hex})
            assert resp.status == 404
        rows = list(csv.reader(io.StringIO((await (await web.get("/console/tickets.csv")).read()).decode("utf-8-sig"))))
        assert {r[0] for r in rows[1:]} == visible, openid
    await login(web, PEOPLE["王网格员"])
    assert (await web.get("/console/community")).status == 403  # admins only


async def test_filters_paging_and_sorting(web):
    service, grids = web.app[SERVICE], web.grids
    base = service.ctx.now() - timedelta(hours=1)
    numbers = [await make_ticket(service, grid_id=grids["1"], created=base + timedelta(minutes=i),
                                 category="noise" if i % 2 else "facilities") for i in range(25)]
    await login(web, "s-admin")
    first = await (await web.get("/console/tickets")).text()
    assert "共 25 件" in first and "第 1 / 2 页" in first
    assert re.findall(r'/console/tickets/(\d+)"', first)[:2] == [numbers[-1], numbers[-2]]  # newest first
    second = await (await web.get("/console/tickets?page=2")).text()
    assert re.findall(r'/console/tickets/(\d+)"', second) == [numbers[4], numbers[3], numbers[2], numbers[1], numbers[0]]
    oldest = await (await web.get("/console/tickets?sort=old")).text()
    assert re.findall(r'/console/tickets/(\d+)"', oldest)[0] == numbers[0]
    noise = await (await web.get("/console/tickets?category=noise")).text()
    assert "共 12 件" in noise
    assert "共 0 件" in await (await web.get(f"/console/tickets?grid={grids['2']}")).text()
    month = f"{base:%Y-%m}"
    assert "共 25 件" in await (await web.get(f"/console/tickets?month={month}")).text()
    assert "共 0 件" in await (await web.get("/console/tickets?month=2001-01")).text()
    assert "共 0 件" in await (await web.get("/console/tickets?overdue=1")).text()
    service.ctx.now = lambda: base + timedelta(days=3)  # past every response deadline (24 h)
    await login(web, "s-admin")  # the last session ended 12 hours after it began
    assert "共 25 件" in await (await web.get("/console/tickets?overdue=1")).text()
    assert "共 25 件" in await (await web.get("/console/tickets?status=dispatched")).text()
    assert "共 0 件" in await (await web.get("/console/tickets?status=closed")).text()


async def test_resident_text_is_escaped_everywhere(web):
    service = web.app[SERVICE]
    number = await make_ticket(service, grid_id=web.grids["1"], text=HOSTILE)
    await login(web, "s-admin")
    for path in ("/console/tickets", f"/console/tickets/{number}", "/console"):
        page = await (await web.get(path)).text()
        assert "<script>alert" not in page
    assert "&lt;script&gt;alert" in await (await web.get(f"/console/tickets/{number}")).text()
    rows = list(csv.reader(io.StringIO((await (await web.get("/console/tickets.csv")).read()).decode("utf-8-sig"))))
    assert rows[1][-1] == HOSTILE  # starts with '<': kept as it is
    formula = await make_ticket(service, grid_id=web.grids["1"], text="=1+1")
    rows = list(csv.reader(io.StringIO((await (await web.get("/console/tickets.csv")).read()).decode("utf-8-sig"))))
    assert [r[-1] for r in rows if r[0] == formula] == ["'=1+1"]  # never a formula in a spreadsheet


# -- actions: the chat's own staff commands ---------------------------------------------------------------------
def test_console_actions_are_the_chat_commands():
    assert command_text("accept", "100009") == "签收 100009"
    assert command_text("reply", "100009", words="明天 上午\n来修") == "回复 100009 明天 上午 来修"
    assert command_text("resolve", "100009") == "办结 100009"
    assert command_text("reassign", "100009", target="property", words="物业的事") == "转派 100009 物业 物业的事"
    assert command_text("reassign", "100009", target="nobody", words="x") is None
    assert command_text("escalate", "100009", route="grid_worker") == "转派 100009 居委会 督办：请加快办理"
    assert command_text("escalate", "100009", route="residents_committee", words="太慢") == "退回 100009 督办：太慢"
    assert command_text("delete", "100009") is None


async def test_accepting_in_the_console_is_accepting_in_the_chat(web, clock):
    service = web.app[SERVICE]
    reply = await WeChat(web, clock).send(PEOPLE["张阿姨"], "楼道的灯坏了好几天了，晚上看不见")
    number = re.search(r"编号：(\d+)", reply).group(1)
    await login(web, PEOPLE["王网格员"])
    page = await (await web.get(f"/console/tickets/{number}")).text()
    nonce = re.search(r'name="nonce" value="([0-9a-f]+)"', page).group(1)
    form = {"_csrf": await csrf(web), "action": "accept", "nonce": nonce}
    resp = await web.post(f"/console/tickets/{number}/act", data=form)
    assert "已签收" in await resp.text()
    again = await web.post(f"/console/tickets/{number}/act", data=form)  # the same form twice: acts once
    assert again.status == 200
    async with service.ctx.sessions() as db:
        ticket = (await db.execute(select(Ticket).where(Ticket.number == number))).scalar_one()
        assert ticket.status == "accepted" and ticket.assignee_id is not None
        notices = (await db.execute(select(Outbox.text).where(Outbox.openid == PEOPLE["张阿姨"]))).scalars().all()
    assert sum("签收" in n for n in notices) == 1
    # a grid worker may not escalate; the form is not even offered
    assert "act-escalate" not in await (await web.get(f"/console/tickets/{number}")).text()
    resp = await web.post(f"/console/tickets/{number}/act", data={
        "_csrf": await csrf(web), "action": "escalate", "nonce": uuid.uuid4().hex})
    assert resp.status == 403
    resp = await web.post(f"/console/tickets/{number}/act", data={
        "_csrf": await csrf(web), "action": "resolve", "words": "换了新灯泡", "nonce": uuid.uuid4().hex})
    assert "办结" in await resp.text()
    page = await (await web.get(f"/console/tickets/{number}")).text()
    assert "换了新灯泡" in page and "已签收" in page


async def test_admin_escalates_to_the_residents_committee(web, clock):
    reply = await WeChat(web, clock).send(PEOPLE["张阿姨"], "楼下的垃圾三天没人收了")
    number = re.search(r"编号：(\d+)", reply).group(1)
    await login(web, "s-admin")
    resp = await web.post(f"/console/tickets/{number}/act", data={
        "_csrf": await csrf(web), "action": "escalate", "words": "三天没人管", "nonce": uuid.uuid4().hex})
    assert "居委会" in await resp.text()
    async with web.app[SERVICE].ctx.sessions() as db:
        assert (await db.execute(select(Ticket.route).where(Ticket.number == number))).scalar_one() == "residents_committee"


# -- exports and the report ---------------------------------------------------------------------------------
async def test_month_workbook_has_a_sheet_per_dimension_and_the_tickets(web):
    service = web.app[SERVICE]
    number = await make_ticket(service, grid_id=web.grids["1"], text="=HYPERLINK(\"x\")")
    month = f"{service.ctx.now():%Y-%m}"
    await login(web, "s-admin")
    resp = await web.get(f"/console/reports/{month}.xlsx")
    assert resp.status == 200 and "spreadsheetml" in resp.headers["Content-Type"]
    book = openpyxl.load_workbook(io.BytesIO(await resp.read()))
    assert book.sheetnames == ["汇总", "按网格", "按办理人", "按承办单位", "按类别", "工单"]
    tickets = list(book["工单"].iter_rows(values_only=True))
    assert tickets[1][0] == number and tickets[1][-1] == '=HYPERLINK("x")'
    assert book["工单"].cell(2, 12).data_type == "s"  # text, not a formula
    summary = list(book["汇总"].iter_rows(values_only=True))
    assert summary[2][:2] == ("合计", 1)
    await login(web, PEOPLE["陈主任"])  # another scope: none of grid 1's grid work
    book = openpyxl.load_workbook(io.BytesIO(await (await web.get(f"/console/reports/{month}.xlsx")).read()))
    assert len(list(book["工单"].iter_rows())) == 1


facts = st.builds(
    lambda d, acc, rd, res, sd, solved, rating: (d, acc, rd, res, sd, solved, rating),
    st.integers(0, 40), st.one_of(st.none(), st.integers(0, 80)), st.one_of(st.none(), st.integers(0, 80)),
    st.one_of(st.none(), st.integers(0, 80)), st.one_of(st.none(), st.integers(0, 80)),
    st.one_of(st.none(), st.booleans()), st.one_of(st.none(), st.integers(1, 3)))


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(facts, max_size=25), now_h=st.integers(0, 90))
async def test_sql_counts_follow_the_rules_of_handlers_rates(engine, rows, now_h):
    """The database's counts equal handlers.rates.rates over the same tickets, in every group."""
    t0 = datetime(2026, 11, 1)
    hour = timedelta(hours=1)
    now = t0 + now_h * hour
    async with engine.begin() as conn:
        await conn.execute(Ticket.__table__.delete())
        for i, (d, acc, rd, res, sd, solved, rating) in enumerate(rows):
            opt = lambda h: None if h is None else t0 + h * hour  # noqa: E731
            await conn.execute(insert(Ticket.__table__).values(
                id=10_000 + i, number=ticket_number(10_000 + i), openid="o", text="t",
                category=("noise", "water")[i % 2], confidence=1, keywords="", intent="complaint", status="accepted",
                created_at=t0, updated_at=t0, route="grid_worker", dispatched_at=t0 + d * hour,
                accepted_at=opt(acc), response_due=opt(rd), resolved_at=opt(res), resolve_due=opt(sd),
                solved=solved, rating=rating, reminded=False, escalation_level=0, reopen_count=0))
    from sqlalchemy.ext.asyncio import AsyncSession

    async with AsyncSession(engine) as session:
        counts = await reports.month_counts(session, *reports.month_bounds("2026-11"), now)
        table = await monthly(session, "2026-11", now)
    expected = {}
    for i, (d, acc, rd, res, sd, solved, rating) in enumerate(rows):
        opt = lambda h: None if h is None else t0 + h * hour  # noqa: E731
        expected.setdefault(("noise", "water")[i % 2], []).append(
            Facts(t0 + d * hour, opt(acc), opt(rd), opt(res), opt(sd), solved, rating))
    for code, items in expected.items():
        assert rates(items, now) == reports_rates(counts["category"][code])
    assert table["all"]["合计"] == rates([f for items in expected.values() for f in items], now)
    assert "合计" in render("2026-11", table)


def reports_rates(counts):
    from handlers.rates import Rates

    return Rates(*counts)


async def test_the_chat_sends_a_login_link_and_ends_every_session(wechat, service, client):
    """`后台` in the chat sends the link; `退出后台` ends all of that person's sessions at once."""
    from storage.models import Staff

    async with service.ctx.sessions() as s:
        s.add(Staff(openid="chat-admin", role="admin", name="管理员", created_at=service.ctx.now()))
        await s.commit()
    reply = await wechat.send("chat-admin", "后台")
    url = next(word for word in reply.split() if "/console/login?token=" in word)
    token = url.split("token=", 1)[1]
    started = await auth.use_login_link(service.ctx.sessions, token, service.ctx.now(), 12)
    assert started is not None and started.openid == "chat-admin"
    assert "1处登录" in await wechat.send("chat-admin", "退出后台")
    async with service.ctx.sessions() as s:
        assert await auth.session_staff(s, started.session_id, service.ctx.now()) is None
    assert "工作人员" in await wechat.send("a-resident", "后台")  # no console for residents
