"""诉求 intake: a resident's words become a ticket with a receipt; pictures and places attach to it."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, update

import nlp
from handlers import dispatch, hotspots, texts, ticket_rules
from handlers.context import Context
from handlers.types import Inbound, Outcome
from storage import tickets as repo
from storage.ids import ticket_number
from handlers.notify import notify
from storage.models import Attachment, Proposal, Ticket, TicketEvent, TicketParty
from storage.writer import Unit

_MEDIA_NAMES = {"image": "照片", "location": "位置", "voice": "语音", "video": "视频"}
_COMMON_CATEGORIES = ("environment", "property", "facilities")  # offered when the classifier has no guess
HAS_TICKETS_S = 180 * 86400  # longer than any ticket stays open


def _handler_name(route: str) -> str:
    return texts.ROUTE_NAMES.get(route, texts.ROUTE_NAMES["duty_desk"])


async def open_ticket(msg: Inbound, ctx: Context, text: str, verdict: nlp.Verdict | None = None) -> Outcome:
    """Store the resident's words as a new ticket, dispatch it, and answer with its receipt."""
    verdict = verdict or nlp.classify(text)
    category = nlp.CATEGORIES[verdict.category]
    now = ctx.now()
    keywords = " ".join(verdict.keywords)[:200]
    # The flag spares first-time residents a query: only someone with tickets can repeat one. (Without
    # shared state, say while Redis restarts, a repeat may become a new ticket; nothing is lost.)
    if not verdict.emergency and await ctx.state.get("has_tickets:" + msg.openid):
        mine = await ctx.read(repo.open_tickets, msg.openid, category.code, ticket_rules.OPEN)
        if repeat := hotspots.repeat_of(mine, text):
            return _repeat(msg, ctx, repeat, now)
    home = await ctx.directory.home(msg.openid)
    place, where = (dispatch.Place(home.grid_id, home.household_id), home.where) if home else (dispatch.Place(), "")
    ask = verdict.unsure and not verdict.emergency  # in danger, help comes first; the category can wait
    link, orphans = None, []
    # The flags spare most messages these queries: only a resident who sent a place or a picture needs them.
    pinned, pictures = await ctx.state.get_many(["pin:" + msg.openid, "orphans:" + msg.openid])
    if pinned or pictures or (place.grid_id is not None and not ask):
        since = now - timedelta(seconds=ctx.attach_window_s)
        async with ctx.sessions() as session:
            if place.grid_id is None and pinned:
                place = await dispatch.pinned_place(session, msg.openid, since)
                where = await dispatch.where(session, place)
            if pictures:
                orphans = await repo.orphan_attachment_ids(session, msg.openid, since)
            if place.grid_id is not None and not ask:
                link = await hotspots.find_link(
                    session, grid_id=place.grid_id, household=hotspots.household_key(place.household_id, msg.openid),
                    category=category.code, keywords=keywords, now=now,
                    window=timedelta(seconds=ctx.hotspot_window_s), threshold=ctx.hotspot_households)
    route_plan = dispatch.plan(category, place, verdict.emergency)
    if ask:  # a person at the duty desk sorts it out if the resident does not answer the question
        route_plan = dispatch.Plan("duty_desk", (), route_plan.alert_routes)
    staff = await ctx.directory.members((route_plan.route,) + route_plan.co_routes, place.grid_id)
    alerted = await ctx.directory.members(route_plan.alert_routes, place.grid_id)

    ticket_id = await ctx.ticket_ids.next()
    number = ticket_number(ticket_id)
    limits = dispatch.time_limits(category, verdict.emergency, ctx.time_limits)
    unit = Unit()
    unit.add(Ticket, id=ticket_id, number=number, openid=msg.openid, text=text, category=category.code,
             confidence=round(verdict.confidence, 4), keywords=keywords, intent=verdict.intent,
             emergency=verdict.emergency, created_at=now, updated_at=now, cluster_id=link and link.cluster_id,
             **dispatch.ticket_fields(route_plan, place, now, limits))
    unit.add(TicketEvent, ticket_id=ticket_id, at=now, actor=msg.openid, action="created", note="")
    unit.add(TicketEvent, ticket_id=ticket_id, at=now, actor="system", action="dispatched",
             note=texts.ROUTE_NAMES.get(route_plan.route, route_plan.route))
    for row in dispatch.party_rows(ticket_id, route_plan):
        unit.add(TicketParty, **row)
    if orphans:
        unit.updates.append(update(Attachment).where(Attachment.id.in_(orphans)).values(ticket_id=ticket_id))
    if msg.kind == "voice":  # the resident spoke: keep the recording with its transcript
        unit.add(Attachment, ticket_id=ticket_id, openid=msg.openid, kind="voice", media_id=msg.media_id,
                 text=text, created_at=now)
    households = 1
    if link:
        households = link.households
        inserts, updates = hotspots.link_statements(link, ticket_id, place.grid_id, category.code, now)
        unit.inserts += [(model.__table__, row) for model, row in inserts]
        unit.updates += updates
        if link.propose:
            unit.add(Proposal, title=f"{where or '本网格'}{category.name}问题（{households}户反映）", source="cluster",
                     cluster_id=link.cluster_id, status="candidate", created_at=now)
            for member in await ctx.directory.members(("residents_committee",), None):
                notify(unit, member.openid, texts.hotspot_notice(category.name, where, households, number), now,
                       ticket_id)
    for member in staff:
        lead = member.role in (route_plan.route, "admin")
        notify(unit, member.openid, texts.new_ticket_notice(number, category.name, text, where, limits[0],
                                                            households, lead=lead), now, ticket_id)
    for member in alerted:
        if member not in staff:
            notify(unit, member.openid, texts.emergency_notice(number, text, where), now, ticket_id)

    if ask:
        options = [code for code, _ in verdict.candidates[:3] if code != "other"] or list(_COMMON_CATEGORIES)
        reply = texts.choose_category(number, [nlp.CATEGORIES[c].name for c in options])
        conversation = {"step": "choose_category", "ticket": ticket_id, "number": number, "options": options}
    else:
        handler = _handler_name(route_plan.route)
        reply = texts.receipt(number, category.name, handler, int(limits[0]), wish=verdict.intent == "wish")
        conversation = None
    if verdict.emergency:
        reply = texts.emergency_advice(nlp.EMERGENCIES[verdict.emergency].call) + reply

    async def remember() -> None:
        await ctx.state.set("last_ticket:" + msg.openid, f"{ticket_id} {number}", ctx.attach_window_s)
        await ctx.state.set("has_tickets:" + msg.openid, "1", HAS_TICKETS_S)
        await ctx.state.delete("orphans:" + msg.openid)
        if conversation:
            await ctx.set_conversation(msg.openid, conversation)
        else:
            await ctx.end_conversation(msg.openid)

    return Outcome(reply, unit, [remember])


async def remember_open_complainants(ctx: Context) -> None:
    """Set the has-tickets flag of everyone with an open ticket (for a fresh in-process state at start-up)."""
    openids = await ctx.read(repo.openids_with_open_tickets, ticket_rules.OPEN)
    await ctx.state.batch([("set", "has_tickets:" + openid, "1", HAS_TICKETS_S) for openid in openids])


def _repeat(msg: Inbound, ctx: Context, ticket: Ticket, now) -> Outcome:
    """The same complaint again: no new ticket; the handler's timeline records the resident asked again."""
    unit = Unit()
    unit.add(TicketEvent, ticket_id=ticket.id, at=now, actor=msg.openid, action="repeated", note=msg.text[:200])
    return Outcome(texts.repeat_progress(ticket.number, ticket.status), unit)


async def choose_category(msg: Inbound, ctx: Context, conversation: dict) -> Outcome | None:
    """The resident answers the category question; None when the answer is not a choice at all."""
    answer = msg.text.strip()
    options: list[str] = conversation["options"]
    names = [nlp.CATEGORIES[c].name for c in options]
    if not (answer.isascii() and answer.isdigit()):
        return None
    choice = int(answer)
    if not 0 <= choice <= len(options):
        return Outcome(texts.choose_again(names))
    code = options[choice - 1] if choice else "other"
    category = nlp.CATEGORIES[code]
    now = ctx.now()
    unit = Unit()
    unit.updates.append(update(Ticket).where(Ticket.id == conversation["ticket"]).values(
        category=code, confidence=1.0, updated_at=now))
    unit.add(TicketEvent, ticket_id=conversation["ticket"], at=now, actor=msg.openid, action="categorised",
             note=category.name)
    route = await _reroute(ctx, unit, conversation["ticket"], category, now)
    response_hours = dispatch.time_limits(category, None, ctx.time_limits)[0]
    reply = texts.categorised(conversation["number"], category.name, _handler_name(route), int(response_hours))

    async def done() -> None:
        await ctx.end_conversation(msg.openid)

    return Outcome(reply, unit, [done])


async def _reroute(ctx: Context, unit: Unit, ticket_id: int, category: nlp.Category, now) -> str:
    """Send a ticket the duty desk was holding to the body its chosen category belongs to."""
    async with ctx.sessions() as session:
        ticket = await session.get(Ticket, ticket_id)
        if ticket is None or ticket.assignee_id is not None or ticket.status != "dispatched":
            return ticket.route if ticket else "duty_desk"  # someone already took it: they keep it
        place = dispatch.Place(ticket.grid_id, ticket.household_id)
        route_plan = dispatch.plan(category, place, ticket.emergency)
        if route_plan.route == ticket.route:
            return ticket.route
        staff = await dispatch.members(session, (route_plan.route,) + route_plan.co_routes, place.grid_id)
        where = await dispatch.where(session, place)
    unit.updates.append(update(Ticket).where(Ticket.id == ticket_id, Ticket.assignee_id.is_(None))
                        .values(route=route_plan.route))
    unit.deletes.append(delete(TicketParty).where(TicketParty.ticket_id == ticket_id))
    for row in dispatch.party_rows(ticket_id, route_plan):
        unit.add(TicketParty, **row)
    unit.add(TicketEvent, ticket_id=ticket_id, at=now, actor="system", action="dispatched",
             note=texts.ROUTE_NAMES.get(route_plan.route, route_plan.route))
    response_hours = dispatch.time_limits(category, ticket.emergency, ctx.time_limits)[0]
    for member in staff:
        notify(unit, member.openid, texts.new_ticket_notice(
            ticket.number, category.name, ticket.text, where, response_hours, 1,
            lead=member.role in (route_plan.route, "admin")), now, ticket_id)
    return route_plan.route


async def attach_media(msg: Inbound, ctx: Context) -> Outcome:
    """A picture, place or voice note: part of the ticket just opened, or kept until the words come."""
    what = _MEDIA_NAMES.get(msg.kind, "内容")
    last = await ctx.state.get("last_ticket:" + msg.openid)
    now = ctx.now()
    ticket_id, number = (int(last.split()[0]), last.split()[1]) if last else (None, "")
    unit = Unit()
    unit.add(Attachment, ticket_id=ticket_id, openid=msg.openid, kind=msg.kind, media_id=msg.media_id,
             url=msg.pic_url, text=msg.text or msg.label, latitude=msg.latitude, longitude=msg.longitude,
             created_at=now)

    async def remember_location() -> None:  # a new ticket soon after may be routed by it
        await ctx.state.set("pin:" + msg.openid, "1", ctx.attach_window_s)

    after = [remember_location] if msg.kind == "location" else []
    if ticket_id is None:
        async def remember_orphan() -> None:
            await ctx.state.set("orphans:" + msg.openid, "1", ctx.attach_window_s)

        return Outcome(texts.orphan_media(what), unit, [remember_orphan, *after])
    unit.add(TicketEvent, ticket_id=ticket_id, at=now, actor=msg.openid, action="attached", note=what)
    return Outcome(texts.attached(number, what), unit, after)


async def show_ticket(msg: Inbound, ctx: Context, number: str) -> Outcome:
    async with ctx.sessions() as session:
        ticket = await repo.resident_ticket(session, msg.openid, number)
        if ticket is None:
            return Outcome(texts.ticket_not_found(number))
        events = await repo.timeline(session, ticket.id)
    history = [(e.at, texts.EVENT_NAMES.get(e.action, e.action) + (f"：{e.note}" if e.note else "")) for e in events]
    category = nlp.CATEGORIES.get(ticket.category)
    return Outcome(texts.ticket_status(ticket.number, category.name if category else ticket.category,
                                       ticket.status, ticket.text, history))


async def list_tickets(msg: Inbound, ctx: Context) -> Outcome:
    tickets = await ctx.read(repo.resident_tickets, msg.openid)
    if not tickets:
        return Outcome(texts.NO_TICKETS)
    return Outcome(texts.ticket_list([tuple(t) for t in tickets]))
