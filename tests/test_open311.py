"""Open311 GeoReport v2: services, definitions, requests (GET with filters, POST), discovery, errors, keys;
a posted request is a ticket like a WeChat one, and no resident identity is ever in an answer."""
from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import SERVICE, create_app
from bot.web.open311 import anonymise, create_key, iso, parse_date
from storage.models import Attachment, Outbox, Ticket
from tests.web_support import PEOPLE, make_ticket, seed_people

BASE = "/open311/v2"


@pytest.fixture
async def api(settings, clock):
    app = create_app(settings, clock=clock, migrate=True, state_prefix=f"linli-test-{uuid.uuid4().hex}:",
                     background=False)
    async with TestClient(TestServer(app)) as c:
        service = c.app[SERVICE]
        c.grids = await seed_people(service)
        async with service.ctx.sessions() as session, session.begin():
            c.key = await create_key(session, "12345-platform", service.ctx.now())
        yield c


async def test_services_and_definitions_in_json_and_xml(api):
    services = await (await api.get(f"{BASE}/services.json")).json()
    codes = {s["service_code"]: s for s in services}
    assert codes["environment"]["service_name"] == "环境卫生" and codes["noise"]["metadata"] is True
    assert codes["environment"]["metadata"] is False and codes["environment"]["type"] == "realtime"
    root = ET.fromstring(await (await api.get(f"{BASE}/services.xml")).read())
    assert root.tag == "services" and len(root.findall("service")) == len(services)
    noise = await (await api.get(f"{BASE}/services/noise.json")).json()
    assert noise["service_code"] == "noise"
    attribute = noise["attributes"][0]
    assert attribute["code"] == "when" and attribute["datatype"] == "singlevaluelist"
    assert {"key": "night", "name": "夜间"} in attribute["values"]
    xml = ET.fromstring(await (await api.get(f"{BASE}/services/noise.xml")).read())
    assert xml.tag == "service_definition" and xml.find("attributes/attribute/code").text == "when"
    missing = await api.get(f"{BASE}/services/nothing.json")
    assert missing.status == 404 and (await missing.json())[0]["code"] == 404
    discovery = await (await api.get(f"{BASE}/discovery.json")).json()
    assert discovery["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"


async def test_request_endpoints_need_a_valid_key(api):
    for resp in (await api.get(f"{BASE}/requests.json"), await api.get(f"{BASE}/requests.json?api_key=wrong"),
                 await api.post(f"{BASE}/requests.json", data={"service_code": "noise", "description": "吵"}),
                 await api.get(f"{BASE}/requests/100009.json")):
        assert resp.status == 403
        assert (await resp.json())[0]["code"] == 403
    resp = await api.get(f"{BASE}/requests.xml?api_key=wrong")
    root = ET.fromstring(await resp.read())
    assert root.tag == "errors" and root.find("error/code").text == "403"


async def test_a_posted_request_becomes_a_routed_ticket_with_its_receipt(api):
    service = api.app[SERVICE]
    grid1 = json.loads((await _polygon(service, api.grids["1"])))
    lon, lat = _inside(grid1)
    resp = await api.post(f"{BASE}/requests.json", data={
        "api_key": api.key, "service_code": "noise", "description": "晚上十一点还有人装修，我电话13812345678",
        "lat": str(lat), "long": str(lon), "attribute[when]": "night", "account_id": "citizen-7"})
    assert resp.status == 201, await resp.text()
    [answer] = await resp.json()
    number = answer["service_request_id"]
    assert f"编号：{number}" in answer["service_notice"] and answer["account_id"] == "citizen-7"
    async with service.ctx.sessions() as session:
        ticket = (await session.execute(select(Ticket).where(Ticket.number == number))).scalar_one()
        assert ticket.category == "noise" and ticket.grid_id == api.grids["1"]  # routed by the pin, as in WeChat
        assert ticket.route == "grid_worker" and ticket.status == "dispatched" and "夜间" in ticket.text
        pins = (await session.execute(select(Attachment).where(Attachment.ticket_id == ticket.id))).scalars().all()
        assert [p.kind for p in pins] == ["location"]
        told = (await session.execute(select(Outbox.openid).where(Outbox.ticket_id == ticket.id))).scalars().all()
    assert PEOPLE["王网格员"] in told  # the grid worker is told, and the deadlines chase it
    got = await (await api.get(f"{BASE}/requests/{number}.json?api_key={api.key}")).json()
    assert got[0]["service_request_id"] == number and got[0]["status"] == "open"
    assert "13812345678" not in json.dumps(got, ensure_ascii=False)
    assert got[0]["requested_datetime"].endswith("+08:00")
    bad = await api.post(f"{BASE}/requests.json", data={
        "api_key": api.key, "service_code": "noise", "description": "吵", "address_string": "3栋",
        "attribute[when]": "sometimes"})
    assert bad.status == 400 and "attribute[when]" in (await bad.json())[0]["description"]
    for data in ({"service_code": "nothing", "description": "x", "address_string": "3栋"},
                 {"service_code": "noise", "description": "", "address_string": "3栋"},
                 {"service_code": "noise", "description": "吵"}):
        resp = await api.post(f"{BASE}/requests.json", data={"api_key": api.key, **data})
        assert resp.status == 400


async def test_listing_filters_and_no_resident_identity(api):
    service = api.app[SERVICE]
    now = service.ctx.now()
    old = await make_ticket(service, grid_id=api.grids["1"], created=now - timedelta(days=100))
    open_one = await make_ticket(service, grid_id=api.grids["1"], text="我是张阿姨，3栋2单元501，电话13900001111")
    closed = await make_ticket(service, grid_id=api.grids["2"], status="closed", category="environment")
    listed = await (await api.get(f"{BASE}/requests.json?api_key={api.key}")).json()
    assert {r["service_request_id"] for r in listed} == {open_one, closed}  # the last 90 days
    text = json.dumps(listed, ensure_ascii=False)
    for secret in ("r-zhang", "13900001111", "501", "openid"):
        assert secret not in text
    assert next(r for r in listed if r["service_request_id"] == open_one)["address"] == "幸福里1号网格"
    assert {r["service_request_id"] for r in await (await api.get(
        f"{BASE}/requests.json?api_key={api.key}&status=closed")).json()} == {closed}
    assert {r["service_request_id"] for r in await (await api.get(
        f"{BASE}/requests.json?api_key={api.key}&status=open&service_code=facilities")).json()} == {open_one}
    start = iso(now - timedelta(days=101)).replace("+", "%2B")
    assert len(await (await api.get(f"{BASE}/requests.json?api_key={api.key}&start_date={start}")).json()) == 3
    end = iso(now - timedelta(days=50)).replace("+", "%2B")
    assert {r["service_request_id"] for r in await (await api.get(
        f"{BASE}/requests.json?api_key={api.key}&start_date={start}&end_date={end}")).json()} == {old}
    assert {r["service_request_id"] for r in await (await api.get(
        f"{BASE}/requests.json?api_key={api.key}&service_request_id={old},{closed}")).json()} == {old, closed}
    root = ET.fromstring(await (await api.get(f"{BASE}/requests.xml?api_key={api.key}")).read())
    assert root.tag == "service_requests" and len(root.findall("request")) == 2
    bad = await api.get(f"{BASE}/requests.json?api_key={api.key}&status=pending")
    assert bad.status == 400
    bad = await api.get(f"{BASE}/requests.json?api_key={api.key}&start_date=yesterday")
    assert bad.status == 400 and "ISO 8601" in (await bad.json())[0]["description"]


def test_anonymise_and_dates():
    assert anonymise("3栋2单元501室漏水，电话13812345678") == "3栋2单元***漏水，电话***"
    assert anonymise("12号楼1203的噪音，座机021-12345678") == "12号楼***的噪音，座机***"
    assert parse_date("2026-11-01T08:00:00+08:00", "d").isoformat() == "2026-11-01T00:00:00"
    assert parse_date("2026-11-01T00:00:00Z", "d").isoformat() == "2026-11-01T00:00:00"
    assert iso(parse_date("2026-11-01T08:00:00+08:00", "d")) == "2026-11-01T08:00:00+08:00"


async def _polygon(service, grid_id):
    from storage.models import Grid

    async with service.ctx.sessions() as session:
        return (await session.get(Grid, grid_id)).polygon


def _inside(geometry) -> tuple[float, float]:
    ring = geometry["coordinates"][0] if geometry["type"] == "Polygon" else geometry["coordinates"][0][0]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    return (min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2
