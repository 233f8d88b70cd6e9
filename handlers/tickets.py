"""诉求 intake: a resident's words become a ticket with a receipt; pictures and places attach to it.

Router: `查询 编号` (or the number alone), `我的诉求` (numbered: a digit opens that ticket), the category
question of an unsure ticket, media, and free text, which is a new matter unless it is plainly not one.
"""
from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

from sqlalchemy import delete, update

import nlp
from handlers import dispatch, hotspots, texts, ticket_rules
from handlers.followup import followup_jobs
from handlers.notify import notify
from handlers.normalise import has_han
from handlers.routing import Dialogue, Router, Turn
from handlers.types import Outcome
from storage import tickets as repo
from storage.ids import is_valid_ticket_number, ticket_number
from storage.models import Attachment, Proposal, Ticket, TicketEvent, TicketParty
from storage.writer import Unit

router = Router("tickets")
dialogue = router.dialogue(Dialogue("tickets", exit_reply=texts.LEFT_TO_DUTY_DESK))

LAST_TICKET, HAS_TICKETS, PIN, ORPHANS, RECENT = "last_ticket:", "has_tickets:", "pin:", "orphans:", "recent:"
STATE_KEYS = (LAST_TICKET, HAS_TICKETS, PIN, ORPHANS, RECENT)  # per person, read ahead with every message
_MEDIA_NAMES = {"image": "照片", "location": "位置", "voice": "语音", "video": "视频", "shortvideo": "视频"}
_COMMON_CATEGORIES = ("environment", "property", "facilities")  # offered when the classifier has no guess
HAS_TICKETS_S = 180 * 86400  # longer than any ticket stays open
DOUBLE_SEND_S = 60  # the same words again this soon are a double tap or a resend, not a second matter
EMERGENCY_AGAIN_S = 600  # another emergency message of the same kind this soon belongs to the first ticket
_MIN_COMPLAINT_CHARS = 5  # shorter and without a single keyword: not understood, ask instead of filing


def scheduled(engine, settings) -> list:
    """The follow-up jobs (reminders, 督办, unrated tickets closed): handlers/followup.py."""
    return followup_jobs(engine, second_after=timedelta(hours=settings.escalate_second_h),
                         rating_timeout=timedelta(hours=settings.rating_timeout_h))


def _handler_name(route: str) -> str:
    return texts.ROUTE_NAMES.get(route, texts.ROUTE_NAMES["duty_desk"])


# ---- new matters ------------------------------------------------------------------------------------

@router.text
async def free_text(turn: Turn) -> Outcome:
    """Words no command or open question took: a new matter, unless it is plainly not one."""
    text = turn.text
    if text.isascii() and turn.words.isdigit():
        return await _number_alone(turn)
    verdict = turn.verdict
    if verdict.intent == "smalltalk":
        return Outcome(texts.SMALLTALK)
    if not has_han(text) or (not verdict.keywords and len(text) < _MIN_COMPLAINT_CHARS):
        turn.ask("welcome:menu")
        return Outcome(texts.NOT_UNDERSTOOD)  # a fragment, an English word, a stray emoji: ask, file nothing
    if verdict.intent == "status":
        return await list_tickets(turn)
    return await open_ticket(turn)


async def _number_alone(turn: Turn) -> Outcome:
    """A number by itself is never a complaint: its ticket when it is a tracking number, else a question."""
    number = turn.words
    if is_valid_ticket_number(number) and len(number) >= 6:
        return await show_ticket(turn, number)
    turn.ask("welcome:menu")
    return Outcome(texts.number_not_understood(number))


async def open_ticket(turn: Turn, *, new_matter: bool = False) -> Outcome:
    """Store the resident's words as a new ticket, dispatch it, and answer with its receipt. `new_matter`:
    the resident said it is not the open ticket it resembles."""
    msg, ctx, verdict = turn.msg, turn.ctx, turn.verdict
    text = msg.text.strip() or turn.text  # the record keeps what the resident wrote
    category = nlp.CATEGORIES[verdict.category]
    now = ctx.now()
    recent = await _recent(turn)
    if recent and recent.get("h") == _digest(turn.text):
        return Outcome(recent["r"])  # sent twice: the first one's receipt, nothing stored twice
    if verdict.emergency and recent and recent.get("e") == verdict.emergency:
        return _emergency_again(turn, recent, now)
    keywords = " ".join(verdict.keywords)[:200]
    # The flag spares first-time residents a query: only someone with tickets can repeat one. (Without
    # shared state, say while Redis restarts, a repeat may become a new ticket; nothing is lost.)
    if not verdict.emergency and not new_matter and await ctx.state.get(HAS_TICKETS + msg.openid):
        mine = await ctx.read(repo.open_tickets, msg.openid, category.code, ticket_rules.OPEN)
        if repeat := hotspots.repeat_of(mine, turn.text):
            return _repeat(turn, repeat, now)
        if close := hotspots.maybe_same(mine, verdict.keywords):
            turn.ask(dialogue.state("same"), {"ticket": close.id, "number": close.number, "text": msg.text})
            return Outcome(texts.same_matter(close.number, close.text))
    home = await ctx.directory.home(msg.openid)
    place, where = (dispatch.Place(home.grid_id, home.household_id), home.where) if home else (dispatch.Place(), "")
    ask = verdict.unsure and not verdict.emergency  # in danger, help comes first; the category can wait
    link, orphans = None, []
    # The flags spare most messages these queries: only a resident who sent a place or a picture needs them.
    pinned, pictures = await ctx.state.get_many([PIN + msg.openid, ORPHANS + msg.openid])
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
    about = dispatch.ticket_subject(ticket_id, number, "dispatched")
    limits = dispatch.time_limits(category, verdict.emergency, ctx.time_limits)
    unit = Unit()
    unit.add(Ticket, id=ticket_id, number=number, openid=msg.openid, text=text, category=category.code,
             confidence=round(verdict.confidence, 4), keywords=keywords, intent=verdict.intent,
             emergency=verdict.emergency, created_at=now, updated_at=now, cluster_id=link and link.cluster_id,
             **dispatch.ticket_fields(route_plan, place, now, limits))
    unit.add(TicketEvent, ticket_id=ticket_id, at=now, actor=msg.openid, action="created", note="")
    unit.add(TicketEvent, ticket_id=ticket_id, at=now, actor="system", action="dispatched", note=route_plan.route)
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
        if link.propose:  # a candidate 议题, numbered in the same space as tickets
            proposal_id = await ctx.ticket_ids.next()
            unit.add(Proposal, id=proposal_id, number=ticket_number(proposal_id), title=f"{where or '本网格'}{category.name}问题（{households}户反映）", source="cluster",
                     cluster_id=link.cluster_id, status="candidate", created_at=now)
            for member in await ctx.directory.members(("residents_committee",), None):
                notify(unit, member.openid, texts.hotspot_notice(category.name, where, households, number), now,
                       about=about)
    dispatch.notify_new_ticket(unit, staff, route_plan.route, number=number, category_name=category.name,
                               text=text, where=where, response_hours=limits[0], households=households,
                               emergency=verdict.emergency, now=now, about=about)
    for member in alerted:
        if member not in staff:
            notify(unit, member.openid, texts.emergency_notice(number, text, where), now, about=about)

    if ask:
        options = [code for code, _ in verdict.candidates[:3] if code != "other"] or list(_COMMON_CATEGORIES)
        reply = texts.choose_category(number, [nlp.CATEGORIES[c].name for c in options])
        turn.ask(dialogue.state("category"), {"ticket": ticket_id, "number": number, "options": options})
    else:
        handler = _handler_name(route_plan.route)
        reply = texts.receipt(number, category.name, handler, int(limits[0]))  # a wish is asked about first (wishes)
    if verdict.emergency:
        reply = texts.emergency_advice(verdict.emergency) + reply
    remembered = json.dumps({"h": _digest(turn.text), "r": reply, "e": verdict.emergency, "t": ticket_id,
                             "n": number}, ensure_ascii=False)

    async def remember() -> None:
        await ctx.state.set(LAST_TICKET + msg.openid, f"{ticket_id} {number} {category.code}", ctx.attach_window_s)
        await ctx.state.set(HAS_TICKETS + msg.openid, "1", HAS_TICKETS_S)
        await ctx.state.set(RECENT + msg.openid, remembered, EMERGENCY_AGAIN_S if verdict.emergency else DOUBLE_SEND_S)
        await ctx.state.delete(ORPHANS + msg.openid)

    return Outcome(reply, unit, [remember])


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


async def _recent(turn: Turn) -> dict | None:
    raw = await turn.ctx.state.get(RECENT + turn.openid)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _emergency_again(turn: Turn, recent: dict, now) -> Outcome:
    """More words about the same emergency: the advice again and the first ticket's number, one ticket (its
    handlers were alerted already; the new words go on its timeline)."""
    unit = Unit()
    unit.add(TicketEvent, ticket_id=recent["t"], at=now, actor=turn.openid, action="repeated",
             note=turn.msg.text[:200])
    return Outcome(texts.emergency_advice(recent["e"]) + texts.emergency_again(recent["n"]), unit)


async def remember_open_complainants(ctx) -> None:
    """Set the has-tickets flag of everyone with an open ticket (for a fresh in-process state at start-up)."""
    openids = await ctx.read(repo.openids_with_open_tickets, ticket_rules.OPEN)
    await ctx.state.batch([("set", HAS_TICKETS + openid, "1", HAS_TICKETS_S) for openid in openids])


def _repeat(turn: Turn, ticket, now) -> Outcome:
    """The same complaint again: no new ticket; the handler's timeline records the resident asked again (催办)."""
    unit = Unit()
    unit.add(TicketEvent, ticket_id=ticket.id, at=now, actor=turn.openid, action="repeated", note=turn.msg.text[:200])
    return Outcome(texts.repeat_progress(ticket.number, ticket.status), unit)


@dialogue.step("same")
async def same_or_new(turn: Turn, data: dict) -> Outcome | None:
    """"是编号 X 的那件事吗？": 1 counts a reminder (催办) on it, 2 files the words as a new matter."""
    choice = turn.words
    if choice not in ("1", "2"):
        return None
    turn.rewrite(data["text"])
    turn.done()
    if choice == "2":
        return await open_ticket(turn, new_matter=True)
    async with turn.ctx.sessions() as session:
        ticket = await session.get(Ticket, data["ticket"])
    return _repeat(turn, ticket, turn.ctx.now())


# ---- the category question of an unsure ticket ---------------------------------------------------------

@dialogue.step("category", zero_is_choice=True)
async def choose_category(turn: Turn, data: dict) -> Outcome | None:
    """The resident answers the category question; None when the answer is not a choice at all."""
    answer, ctx = turn.words, turn.ctx
    options: list[str] = data["options"]
    names = [nlp.CATEGORIES[c].name for c in options]
    if not answer.isdigit():
        if len(answer) <= 6:  # not a command, too short to be a new matter: ask again
            return turn.retry(texts.choose_again(names), limit=3, give_up=texts.LEFT_TO_DUTY_DESK)
        return None  # a longer message is a new matter; the ticket waiting for its category keeps its best guess
    choice = int(answer)
    if not 0 <= choice <= len(options):
        return turn.retry(texts.choose_again(names), limit=3, give_up=texts.LEFT_TO_DUTY_DESK)
    code = options[choice - 1] if choice else "other"
    category = nlp.CATEGORIES[code]
    now = ctx.now()
    unit = Unit()
    unit.updates.append(update(Ticket).where(Ticket.id == data["ticket"]).values(
        category=code, confidence=1.0, updated_at=now))
    unit.add(TicketEvent, ticket_id=data["ticket"], at=now, actor=turn.openid, action="categorised",
             note=category.name)
    route = await _reroute(ctx, unit, data["ticket"], category, now)
    response_hours = dispatch.time_limits(category, None, ctx.time_limits)[0]
    turn.done()
    return Outcome(texts.categorised(data["number"], category.name, _handler_name(route), int(response_hours)), unit)


async def _reroute(ctx, unit: Unit, ticket_id: int, category: nlp.Category, now) -> str:
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
    unit.add(TicketEvent, ticket_id=ticket_id, at=now, actor="system", action="dispatched", note=route_plan.route)
    response_hours = dispatch.time_limits(category, ticket.emergency, ctx.time_limits)[0]
    dispatch.notify_new_ticket(unit, staff, route_plan.route, number=ticket.number, category_name=category.name,
                               text=ticket.text, where=where, response_hours=response_hours, households=1,
                               emergency=ticket.emergency, now=now,
                               about=dispatch.ticket_subject(ticket_id, ticket.number, "dispatched"))
    return route_plan.route


# ---- pictures, places and voice notes ------------------------------------------------------------------

@router.on_media("image", "location", "voice", "video", "shortvideo")
async def attach_media(turn: Turn) -> Outcome:
    """A picture, place or voice note: part of the ticket just opened, or kept until the words come."""
    msg, ctx = turn.msg, turn.ctx
    what = _MEDIA_NAMES.get(msg.kind, "内容")
    last = await ctx.state.get(LAST_TICKET + msg.openid)
    now = ctx.now()
    ticket_id, number = (int(last.split()[0]), last.split()[1]) if last else (None, "")
    unit = Unit()
    unit.add(Attachment, ticket_id=ticket_id, openid=msg.openid, kind=msg.kind, media_id=msg.media_id,
             url=msg.pic_url, text=msg.text or msg.label, latitude=msg.latitude, longitude=msg.longitude,
             created_at=now)

    async def remember_location() -> None:  # a new ticket soon after may be routed by it
        await ctx.state.set(PIN + msg.openid, "1", ctx.attach_window_s)

    after = [remember_location] if msg.kind == "location" else []
    if ticket_id is None:
        async def remember_orphan() -> None:
            await ctx.state.set(ORPHANS + msg.openid, "1", ctx.attach_window_s)

        return Outcome(texts.orphan_media(what), unit, [remember_orphan, *after])
    unit.add(TicketEvent, ticket_id=ticket_id, at=now, actor=msg.openid, action="attached", note=what)
    return Outcome(texts.attached(number, what), unit, after)


async def attaching(turn: Turn) -> bool:
    """Whether a voice note belongs to the ticket just opened (else its words are a message of their own):
    only plainly supplementary words attach; words that name a problem of another kind are a new matter.
    (An emergency never gets here: the hallway heard it first.)"""
    last = await turn.ctx.state.get(LAST_TICKET + turn.openid)
    if not last:
        return False
    parts = last.split()
    verdict = turn.verdict
    new_matter = verdict.filing == "file" and not verdict.unsure and len(parts) > 2 and verdict.category != parts[2]
    return not new_matter


async def last_ticket(turn: Turn) -> tuple[int, str] | None:
    """(id, number) of the ticket this person opened within the attach window."""
    last = await turn.ctx.state.get(LAST_TICKET + turn.openid)
    return (int(last.split()[0]), last.split()[1]) if last else None


def attach_words(turn: Turn, ticket_id: int, number: str) -> Outcome:
    """A few more words about the ticket just opened (就在3栋门口): its record, not a new matter."""
    now = turn.ctx.now()
    unit = Unit()
    unit.add(Attachment, ticket_id=ticket_id, openid=turn.openid, kind="text", text=turn.msg.text[:500],
             created_at=now)
    unit.add(TicketEvent, ticket_id=ticket_id, at=now, actor=turn.openid, action="attached", note=turn.msg.text[:200])
    return Outcome(texts.attached(number, "补充的话"), unit)


# ---- looking things up ---------------------------------------------------------------------------------

@router.command(pattern=r"^(?:查询|查|进度)\s*[:：]?\s*(\d{2,12})$")
async def query(turn: Turn, m: re.Match) -> Outcome:
    return await show_ticket(turn, m.group(1))


@router.command("查询进度", "查进度", "进度", pattern=r"^查询(?!\s*\d)")
async def how_to_query(turn: Turn, _m: re.Match | None = None) -> Outcome:
    return Outcome(texts.HOW_TO_QUERY)


async def show_ticket(turn: Turn, number: str, offset: int = 0) -> Outcome:
    """The whole story of the resident's own ticket, a page at a time (`下一页`); staff-only notes left out."""
    async with turn.ctx.sessions() as session:
        ticket = await repo.resident_ticket(session, turn.openid, number)
        if ticket is None:
            return Outcome(texts.ticket_not_found(number))
        events = await repo.timeline(session, ticket.id)
    history = texts.timeline(events, for_staff=False)
    page = history[offset:offset + texts.STORY_PAGE]
    more = offset + len(page) < len(history)
    if more:
        turn.ask(dialogue.state("story"), {"number": number, "offset": offset + len(page)})
    elif offset:
        turn.done()
    return Outcome(texts.ticket_status(ticket.number, texts.category_name(ticket.category), ticket.status,
                                       ticket.text, page, first=offset + 1, total=len(history), more=more))


@dialogue.step("story")
async def story_goes_on(turn: Turn, data: dict) -> Outcome | None:
    if turn.words not in ("下一页", "下页", "更多", "继续"):
        return None
    return await show_ticket(turn, data["number"], int(data["offset"]))


@router.command("我的诉求", "我的问题", "我的反映", "诉求", "我反映的问题")
async def list_tickets(turn: Turn) -> Outcome:
    tickets = await turn.ctx.read(repo.resident_tickets, turn.openid)
    if not tickets:
        return Outcome(texts.NO_TICKETS)
    turn.ask(dialogue.state("mine"), {"numbers": [t.number for t in tickets]})
    return Outcome(texts.ticket_list([tuple(t) for t in tickets]))


@dialogue.step("mine")
async def open_from_list(turn: Turn, data: dict) -> Outcome | None:
    """`我的诉求` numbered the tickets: the digit opens that one."""
    numbers: list[str] = data["numbers"]
    if not turn.words.isdigit():
        return None
    choice = int(turn.words)
    if not 1 <= choice <= len(numbers):
        return turn.retry(texts.pick_from_list(len(numbers)), limit=3, give_up=texts.HOW_TO_QUERY)
    return await show_ticket(turn, numbers[choice - 1])
