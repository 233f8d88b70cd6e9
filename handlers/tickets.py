"""诉求 intake: a resident's words become a ticket with a receipt; pictures and places attach to it."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

import nlp
from handlers import texts
from handlers.context import Context
from handlers.types import Inbound, Outcome
from storage import tickets as repo
from storage.ids import ticket_number
from storage.models import Attachment, Ticket, TicketEvent
from storage.writer import Unit

_MEDIA_NAMES = {"image": "照片", "location": "位置", "voice": "语音", "video": "视频"}
_COMMON_CATEGORIES = ("environment", "property", "facilities")  # offered when the classifier has no guess


def _handler_name(category: nlp.Category) -> str:
    return texts.ROUTE_NAMES.get(category.route, texts.ROUTE_NAMES["duty_desk"])


async def open_ticket(msg: Inbound, ctx: Context, text: str, verdict: nlp.Verdict | None = None) -> Outcome:
    """Store the resident's words as a new ticket and answer with its receipt."""
    verdict = verdict or nlp.classify(text)
    ticket_id = await ctx.ticket_ids.next()
    number = ticket_number(ticket_id)
    now = ctx.now()
    unit = Unit()
    unit.add(Ticket, id=ticket_id, number=number, openid=msg.openid, text=text, category=verdict.category,
             confidence=round(verdict.confidence, 4), keywords=" ".join(verdict.keywords)[:200],
             intent=verdict.intent, emergency=verdict.emergency, status="submitted", created_at=now, updated_at=now)
    unit.add(TicketEvent, ticket_id=ticket_id, at=now, actor=msg.openid, action="created", note="")
    if await ctx.state.get("orphans:" + msg.openid):  # spares the database a query on most messages
        async with ctx.sessions() as session:
            since = now - timedelta(seconds=ctx.attach_window_s)
            orphans = await repo.orphan_attachment_ids(session, msg.openid, since)
        if orphans:
            unit.updates.append(update(Attachment).where(Attachment.id.in_(orphans)).values(ticket_id=ticket_id))
    if msg.kind == "voice":  # the resident spoke: keep the recording with its transcript
        unit.add(Attachment, ticket_id=ticket_id, openid=msg.openid, kind="voice", media_id=msg.media_id,
                 text=text, created_at=now)

    category = nlp.CATEGORIES[verdict.category]
    if verdict.unsure and not verdict.emergency:  # in danger, help comes first; the category can wait
        options = [code for code, _ in verdict.candidates[:3] if code != "other"] or list(_COMMON_CATEGORIES)
        reply = texts.choose_category(number, [nlp.CATEGORIES[c].name for c in options])
        conversation = {"step": "choose_category", "ticket": ticket_id, "number": number, "options": options}
    else:
        reply = texts.receipt(number, category.name, _handler_name(category), category.response_hours,
                              wish=verdict.intent == "wish")
        conversation = None
    if verdict.emergency:
        reply = texts.emergency_advice(verdict.emergency) + reply

    async def remember() -> None:
        await ctx.state.set("last_ticket:" + msg.openid, f"{ticket_id} {number}", ctx.attach_window_s)
        await ctx.state.delete("orphans:" + msg.openid)
        if conversation:
            await ctx.set_conversation(msg.openid, conversation)
        else:
            await ctx.end_conversation(msg.openid)

    return Outcome(reply, unit, [remember])


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
    reply = texts.categorised(conversation["number"], category.name, _handler_name(category), category.response_hours)

    async def done() -> None:
        await ctx.end_conversation(msg.openid)

    return Outcome(reply, unit, [done])


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
    if ticket_id is None:
        async def remember_orphan() -> None:
            await ctx.state.set("orphans:" + msg.openid, "1", ctx.attach_window_s)

        return Outcome(texts.orphan_media(what), unit, [remember_orphan])
    unit.add(TicketEvent, ticket_id=ticket_id, at=now, actor=msg.openid, action="attached", note=what)
    return Outcome(texts.attached(number, what), unit)


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
    async with ctx.sessions() as session:
        tickets = await repo.resident_tickets(session, msg.openid)
    if not tickets:
        return Outcome(texts.NO_TICKETS)
    return Outcome(texts.ticket_list([(t.number, t.text, t.status, t.created_at) for t in tickets]))
