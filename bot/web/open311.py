"""Open311 GeoReport v2 at /open311/v2: services, service definitions, requests (GET, POST), discovery.

A request posted here becomes a ticket exactly as a resident's WeChat message does: the same intake handler
(classified, routed to the grid its location lies in, chased by the same jobs), committed the same way; its
receipt comes back as `service_notice` and its tracking number is the `service_request_id`.

No resident identity is ever in an answer: no openid, name, phone or room. Descriptions have phone numbers
and room numbers masked, the address is the grid, and pictures and pins are not listed (a pin near a door
names a household as well as a room number does). Complaints are not public here: the request endpoints
need an API key (`linli open311 key --name CLIENT`); services and discovery do not.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import nlp
from bot.web import WEB
from bot.web.actions import commit
from handlers import texts, tickets
from handlers.report import route_name
from handlers.routing import Turn
from handlers.types import Inbound
from storage.models import Grid, Open311Client, Ticket, TicketEvent

BASE = "/open311/v2"
CHINA = timezone(timedelta(hours=8))
CLOSED = ("resolved", "closed")  # Open311 knows open and closed; a resolved ticket waits only for its rating
LIST_LIMIT = 1000  # the spec's default window: the last 90 days, at most 1000 requests
DEFAULT_DAYS = 90


@dataclass(frozen=True)
class Attribute:
    code: str
    description: str
    datatype: str  # string, number, singlevaluelist ...
    required: bool = False
    values: dict[str, str] = field(default_factory=dict)


# What a category asks beyond the description (the service definition's attributes).
ATTRIBUTES: dict[str, list[Attribute]] = {
    "noise": [Attribute("when", "什么时候吵", "singlevaluelist", values={"day": "白天", "night": "夜间", "all": "全天"})],
    "water": [Attribute("scope", "影响范围", "singlevaluelist",
                        values={"home": "只有我家", "building": "整栋楼", "area": "整个小区"})],
    "parking": [Attribute("plate", "车牌号（如有）", "string")],
}


class Open311Error(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


# -- API keys ----------------------------------------------------------------------------------------------
def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(session: AsyncSession, name: str, now: datetime) -> str:
    """A new API key for this client (a new key replaces the client's old one); the caller commits."""
    key = secrets.token_urlsafe(24)
    client = (await session.execute(select(Open311Client).where(Open311Client.name == name))).scalar_one_or_none()
    if client is None:
        session.add(Open311Client(name=name, key_hash=_key_hash(key), active=True, created_at=now))
    else:
        client.key_hash, client.active = _key_hash(key), True
    return key


async def _client(request: web.Request, key: str | None) -> Open311Client:
    if not key:
        raise Open311Error(403, "api_key is required")
    async with request.app[WEB].service().ctx.sessions() as session:
        client = (await session.execute(select(Open311Client).where(
            Open311Client.key_hash == _key_hash(key), Open311Client.active.is_(True)))).scalar_one_or_none()
    if client is None:
        raise Open311Error(403, "api_key is not valid")
    return client


# -- formats -------------------------------------------------------------------------------------------------
def iso(at: datetime | None) -> str | None:
    return None if at is None else at.replace(tzinfo=UTC).astimezone(CHINA).isoformat(timespec="seconds")


def parse_date(value: str, name: str) -> datetime:
    """An ISO 8601 date (with its offset; none means China time) as naive UTC."""
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name} must be an ISO 8601 date, e.g. 2026-11-01T00:00:00+08:00") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=CHINA)
    return at.astimezone(UTC).replace(tzinfo=None)


_XML_ROOTS = {"services": ("services", "service"), "requests": ("service_requests", "request"),
              "errors": ("errors", "error"), "definition": ("service_definition", None),
              "discovery": ("discovery", None)}


def _xml_value(parent: ET.Element, key: str, value) -> None:
    child = ET.SubElement(parent, key)
    if isinstance(value, dict):
        for k, v in value.items():
            _xml_value(child, k, v)
    elif isinstance(value, list):
        singular = {"attributes": "attribute", "values": "value", "endpoints": "endpoint", "formats": "format",
                    "keywords": "keyword"}.get(key, "item")
        for item in value:
            _xml_value(child, singular, item)
    elif value is not None:
        child.text = str(value).lower() if isinstance(value, bool) else str(value)


def answer(kind: str, fmt: str, data, status: int = 200) -> web.Response:
    if fmt == "json":
        return web.json_response(data, status=status, dumps=_dumps)
    root_name, item_name = _XML_ROOTS[kind]
    root = ET.Element(root_name)
    for item in (data if item_name else [data]):
        parent = ET.SubElement(root, item_name) if item_name else root
        for key, value in item.items():
            _xml_value(parent, key, value)
    body = b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return web.Response(body=body, status=status, content_type="text/xml", charset="utf-8")


def _dumps(data) -> str:
    import json

    return json.dumps(data, ensure_ascii=False)


@web.middleware
async def errors(request: web.Request, handler):
    """Errors as the spec's list of {code, description}, in the format the path asked for."""
    if not request.path.startswith(BASE):
        return await handler(request)
    fmt = "xml" if request.path.endswith(".xml") else "json"
    try:
        return await handler(request)
    except Open311Error as exc:
        return answer("errors", fmt, [{"code": exc.status, "description": exc.description}], exc.status)
    except web.HTTPNotFound:
        return answer("errors", fmt, [{"code": 404, "description": "not found"}], 404)
    except web.HTTPMethodNotAllowed:
        return answer("errors", fmt, [{"code": 405, "description": "method not allowed"}], 405)


# -- services ------------------------------------------------------------------------------------------------
def service_entry(category: nlp.Category) -> dict:
    return {"service_code": category.code, "service_name": category.name, "description": category.description,
            "metadata": category.code in ATTRIBUTES, "type": "realtime",
            "keywords": category.description.replace("、", ","), "group": route_name(category.route)}


async def services(request: web.Request) -> web.Response:
    return answer("services", request.match_info["fmt"], [service_entry(c) for c in nlp.CATEGORIES.values()])


async def service_definition(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    if code not in nlp.CATEGORIES:
        raise Open311Error(404, f"no service {code}")
    attributes = [{"variable": True, "code": a.code, "datatype": a.datatype, "required": a.required,
                   "datatype_description": "", "order": i, "description": a.description,
                   "values": [{"key": k, "name": v} for k, v in a.values.items()]}
                  for i, a in enumerate(ATTRIBUTES.get(code, []), 1)]
    return answer("definition", request.match_info["fmt"], {"service_code": code, "attributes": attributes})


async def discovery(request: web.Request) -> web.Response:
    url = request.app[WEB].settings.public_url + BASE
    return answer("discovery", "json", {
        "changeset": "2026-12-01T00:00:00+08:00", "contact": "社区居委会", "key_service": "linli open311 key --name CLIENT",
        "endpoints": [{"specification": "http://wiki.open311.org/GeoReport_v2", "url": url,
                       "changeset": "2026-12-01T00:00:00+08:00", "type": "production",
                       "formats": ["application/json", "text/xml"]}]})


# -- requests ------------------------------------------------------------------------------------------------
_PHONE = re.compile(r"(?<!\d)1\d{10}(?!\d)|(?<!\d)\d{7,8}(?!\d)|(?<!\d)0\d{2,3}-?\d{7,8}(?!\d)")
_ROOM = re.compile(r"(\d+\s*(?:栋|幢|号楼|座)\s*(?:\d+\s*单元)?)\s*\d{3,4}\s*(?:室|号|房)?")


def anonymise(text: str) -> str:
    """A resident's words without what names them: phone numbers and room numbers masked."""
    return _ROOM.sub(lambda m: m.group(1) + "***", _PHONE.sub("***", text))


def request_entry(t, grid_name: str) -> dict:
    category = nlp.CATEGORIES.get(t.category)
    return {
        "service_request_id": t.number,
        "status": "closed" if t.status in CLOSED else "open",
        "status_notes": texts.STATUS_NAMES.get(t.status, t.status),
        "service_name": category.name if category else t.category,
        "service_code": t.category,
        "description": anonymise(t.text),
        "agency_responsible": route_name(t.route),
        "service_notice": "",
        "requested_datetime": iso(t.created_at),
        "updated_datetime": iso(t.updated_at),
        "expected_datetime": iso(t.resolve_due),
        "address": grid_name,
        "address_id": "",
        "zipcode": "",
        "lat": None,
        "long": None,
        "media_url": "",
    }


_COLUMNS = (Ticket.number, Ticket.status, Ticket.category, Ticket.text, Ticket.route, Ticket.created_at,
            Ticket.updated_at, Ticket.resolve_due, Ticket.grid_id)


async def _entries(request: web.Request, *where) -> list[dict]:
    async with request.app[WEB].service().ctx.sessions() as session:
        rows = (await session.execute(select(*_COLUMNS).where(*where).order_by(Ticket.created_at.desc(), Ticket.id.desc())
                                      .limit(LIST_LIMIT))).all()
        grids = dict((await session.execute(select(Grid.id, Grid.name))).all())
    return [request_entry(r, grids.get(r.grid_id, "")) for r in rows]


async def list_requests(request: web.Request) -> web.Response:
    q = request.query
    await _client(request, q.get("api_key"))
    where = []
    if ids := q.get("service_request_id"):
        where.append(Ticket.number.in_([i.strip() for i in ids.split(",") if i.strip()]))
    else:  # the spec: without ids, a window (90 days by default) and the other filters
        now = request.app[WEB].service().ctx.now()
        start = parse_date(q["start_date"], "start_date") if q.get("start_date") else now - timedelta(days=DEFAULT_DAYS)
        where.append(Ticket.created_at >= start)
        if q.get("end_date"):
            where.append(Ticket.created_at <= parse_date(q["end_date"], "end_date"))
        if codes := q.get("service_code"):
            where.append(Ticket.category.in_([c.strip() for c in codes.split(",")]))
        if statuses := q.get("status"):
            wanted = {s.strip() for s in statuses.split(",")}
            if wanted - {"open", "closed"}:
                raise Open311Error(400, "status must be open or closed")
            if wanted == {"open"}:
                where.append(Ticket.status.not_in(CLOSED))
            elif wanted == {"closed"}:
                where.append(Ticket.status.in_(CLOSED))
    return answer("requests", request.match_info["fmt"], await _entries(request, *where))


async def one_request(request: web.Request) -> web.Response:
    await _client(request, request.query.get("api_key"))
    found = await _entries(request, Ticket.number == request.match_info["id"])
    if not found:
        raise Open311Error(404, f"no request {request.match_info['id']}")
    return answer("requests", request.match_info["fmt"], found)


def _float(value: str | None, name: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise Open311Error(400, f"{name} must be a number") from None


async def post_request(request: web.Request) -> web.Response:
    form = await request.post()
    client = await _client(request, form.get("api_key"))
    code = str(form.get("service_code", ""))
    if code not in nlp.CATEGORIES:
        raise Open311Error(400, "service_code is missing or unknown (see services.json)")
    description = " ".join(str(form.get("description", "")).split())
    if not description:
        raise Open311Error(400, "description is required")
    lat, lon = _float(form.get("lat"), "lat"), _float(form.get("long"), "long")
    address = " ".join(str(form.get("address_string", "")).split())[:200]
    if (lat is None or lon is None) and not address:
        raise Open311Error(400, "a location is required: lat and long, or address_string")
    answers = []
    for a in ATTRIBUTES.get(code, []):
        value = str(form.get(f"attribute[{a.code}]", "")).strip()
        if a.values and value and value not in a.values:
            raise Open311Error(400, f"attribute[{a.code}] must be one of {', '.join(a.values)}")
        if a.required and not value:
            raise Open311Error(400, f"attribute[{a.code}] is required")
        if value:
            answers.append(f"{a.description}：{a.values.get(value, value)[:50]}")
    text = description[:1000] + (f"（地点：{address}）" if address else "") + "".join(f"（{x}）" for x in answers)
    account = str(form.get("account_id") or form.get("device_id") or "")[:40]
    # One openid per account (so a repeated complaint is recognised as in the chat), else one per request.
    openid = f"open311:{client.id}:{account or uuid.uuid4().hex}"[:64]
    service = request.app[WEB].service()
    now = service.ctx.now()

    def inbound(kind: str, **extra) -> Inbound:
        return Inbound(openid=openid, kind=kind, received_at=now, dedupe_key=f"open311:{uuid.uuid4().hex}", **extra)

    # As a resident's phone sends them: the pin and the picture first, then the words they belong to.
    if lat is not None and lon is not None:
        pin = inbound("location", latitude=lat, longitude=lon, label=address)
        await commit(service, pin, await tickets.attach_media(Turn(pin, service.ctx)), kind="open311")
    if media := str(form.get("media_url", "")):
        if media.startswith(("http://", "https://")):
            picture = inbound("image", pic_url=media[:500])
            await commit(service, picture, await tickets.attach_media(Turn(picture, service.ctx)), kind="open311")
    msg = inbound("text", text=text)
    verdict = nlp.classify(text)
    verdict = verdict._replace(category=code, unsure=False)  # the client chose the service
    outcome = await tickets.open_ticket(Turn(msg, service.ctx, verdict=verdict))
    notice = await commit(service, msg, outcome, kind="open311")
    number = await _number_of(service, outcome.unit)
    return answer("requests", request.match_info["fmt"], [
        {"service_request_id": number, "service_notice": notice, "account_id": account or None}], 201)


async def _number_of(service, unit) -> str | None:
    """The tracking number the unit wrote (a new ticket), or of the ticket it added to (a repeat)."""
    ticket_id = None
    for table, row in unit.inserts if unit else ():
        if table is Ticket.__table__:
            return row["number"]
        if table is TicketEvent.__table__:
            ticket_id = row["ticket_id"]
    if ticket_id is None:
        return None
    async with service.ctx.sessions() as session:
        return (await session.execute(select(Ticket.number).where(Ticket.id == ticket_id))).scalar_one_or_none()


def add_routes(app: web.Application) -> None:
    app.middlewares.append(errors)
    r = app.router
    r.add_get(BASE + "/discovery.json", discovery)
    r.add_get(BASE + "/services.{fmt:json|xml}", services)
    r.add_get(BASE + "/services/{code}.{fmt:json|xml}", service_definition)
    r.add_get(BASE + "/requests.{fmt:json|xml}", list_requests)
    r.add_post(BASE + "/requests.{fmt:json|xml}", post_request)
    r.add_get(BASE + "/requests/{id}.{fmt:json|xml}", one_request)
