"""Staff work in WeChat: list, accept (签收), message the resident, resolve (办结), reassign (转派), return (退回).

Who may do what:
- a ticket waiting to be accepted may be taken by a member of the body it is routed to (grid workers only
  in their own grid) or by an admin; two people accepting at once: exactly one wins (a guarded update);
- the one who accepted it messages the resident, resolves, reassigns or returns it;
- residents may message about their own tickets with the same `回复 编号 内容` command.
Staff see resident details only on tickets they may act on; phone numbers are masked.
"""
from __future__ import annotations

import re

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

import nlp
from handlers import dispatch, texts, ticket_rules
from handlers.context import Context
from handlers.followup import NEW_DEADLINE
from handlers.hotspots import cluster_sizes
from handlers.notify import mask_phone, notify
from handlers.types import Inbound, Outcome
from storage import tickets as repo
from storage.accounts import staff_roles
from storage.models import Resident, Staff, Ticket, TicketEvent, TicketParty
from storage.writer import Unit

_LIST = {"工单": "all", "我的工单": "all", "待签收": "waiting", "办理中": "doing", "逾期": "late"}
_COMMAND = re.compile(r"^\s*(签收|办结|回复|转派|退回|工单)\s*(\d{5,12})\s*(.*)$", re.S)
_TARGETS = {"网格员": "grid_worker", "网格": "grid_worker", "物业": "property", "业委会": "owners_committee",
            "居委会": "residents_committee", "调解": "mediation", "调解委员会": "mediation", "值班": "duty_desk"}
_ROLE_TITLES = {"grid_worker": "网格员", "property": "物业", "owners_committee": "业委会",
                "residents_committee": "居委会", "mediation": "调解委员会", "duty_desk": "社区值班", "admin": "社区"}


def looks_like_staff_command(text: str) -> bool:
    return text.strip() in _LIST or text.strip() in ("工单帮助", "工作台") or bool(_COMMAND.match(text))


def may_take(roles: list[Staff], ticket: Ticket) -> Staff | None:
    """The role under which this person may accept the ticket (its lead body, or an admin)."""
    for role in roles:
        if role.role == "admin" or (role.role == ticket.route and (
                role.role != "grid_worker" or role.grid_id == ticket.grid_id)):
            return role
    return None


def owns(roles: list[Staff], ticket: Ticket) -> Staff | None:
    """The role that accepted the ticket, or an admin's."""
    return next((r for r in roles if r.id == ticket.assignee_id), None) or next(
        (r for r in roles if r.role == "admin"), None)


def signature(role: Staff) -> str:
    """How a staff member is named to residents: the role and a surname, never a phone number."""
    name = role.name[:1] + "*" * max(len(role.name) - 1, 0) if role.name else ""
    return f"{_ROLE_TITLES.get(role.role, '工作人员')}{name}"


async def handle(msg: Inbound, ctx: Context) -> Outcome | None:
    """Staff commands, and `回复` from residents; None when the text is not such a command."""
    text = msg.text.strip()
    if not looks_like_staff_command(text):
        return None
    async with ctx.sessions() as session:
        roles = await staff_roles(session, msg.openid)
        match = _COMMAND.match(text)
        if match and match.group(1) == "回复" and not roles:
            return await _resident_message(session, msg, ctx, match.group(2), match.group(3).strip())
        if not roles:
            return Outcome(texts.NOT_STAFF)
        if not match:
            if text in ("工单帮助", "工作台"):
                return Outcome(texts.STAFF_HELP)
            return await _list(session, ctx, roles, _LIST[text])
        verb, number, rest = match.group(1), match.group(2), match.group(3).strip()
        ticket = (await session.execute(select(Ticket).where(Ticket.number == number))).scalar_one_or_none()
        if ticket is None:
            return Outcome(texts.not_yours(number))
        if verb == "工单":
            return await _detail(session, roles, ticket)
        if verb == "签收":
            return await _accept(session, ctx, roles, ticket)
        if verb == "回复":
            return await _staff_message(session, ctx, roles, ticket, rest)
        if verb == "办结":
            return await _resolve(ctx, roles, ticket, rest)
        if verb == "转派":
            return await _reassign(session, ctx, roles, ticket, rest)
        return await _return(session, ctx, roles, ticket, rest)


def _visible(roles: list[Staff]):
    """Tickets a person may see in lists: routed to their body (their grid for workers) or accepted by them."""
    ids = [r.id for r in roles]
    if any(r.role == "admin" for r in roles):
        return Ticket.status.in_(ticket_rules.OPEN)
    bodies = [and_(Ticket.route == r.role, Ticket.grid_id == r.grid_id) if r.role == "grid_worker"
              else Ticket.route == r.role for r in roles]
    return or_(Ticket.assignee_id.in_(ids), and_(Ticket.assignee_id.is_(None), or_(*bodies)))


async def _list(session: AsyncSession, ctx: Context, roles: list[Staff], which: str) -> Outcome:
    now = ctx.now()
    rows = list((await session.execute(select(Ticket).where(
        _visible(roles), Ticket.status.in_(("dispatched", "accepted", "reopened"))).order_by(Ticket.id))).scalars())
    waiting = [t for t in rows if t.status == "dispatched"]
    doing = [t for t in rows if t.status != "dispatched"]

    def due(t: Ticket):
        return t.response_due if t.status == "dispatched" else t.resolve_due

    late = [t for t in rows if due(t) is not None and due(t) < now]
    sizes = await cluster_sizes(session, {t.cluster_id for t in rows if t.cluster_id})

    def lines(items):
        return [texts.staff_ticket_line(t.number, _category_name(t.category), t.text, due(t), now,
                                        sizes.get(t.cluster_id, 1)) for t in items]

    if which == "all":
        if not rows:
            return Outcome(texts.NO_WORK)
        parts = [texts.staff_list(title, lines(items)) for title, items in
                 (("待签收", waiting), ("办理中", doing), ("逾期", late)) if items]
        return Outcome("\n\n".join(parts))
    items = {"waiting": waiting, "doing": doing, "late": late}[which]
    title = {"waiting": "待签收", "doing": "办理中", "late": "逾期"}[which]
    return Outcome(texts.staff_list(title, lines(items)) if items else texts.NO_WORK)


async def _detail(session: AsyncSession, roles: list[Staff], ticket: Ticket) -> Outcome:
    if not (may_take(roles, ticket) or owns(roles, ticket) or await _co_handler(session, roles, ticket)):
        return Outcome(texts.not_yours(ticket.number))
    resident = await session.get(Resident, ticket.openid)
    who = f"{resident.name or '居民'} {mask_phone(resident.phone)}" if resident and resident.phone else (
        resident.name if resident else "")
    where = await dispatch.where(session, dispatch.Place(ticket.grid_id, ticket.household_id))
    history = [(e.at, texts.EVENT_NAMES.get(e.action, e.action) + (f"：{e.note}" if e.note else ""))
               for e in await repo.timeline(session, ticket.id)]
    return Outcome(texts.staff_ticket_detail(ticket.number, _category_name(ticket.category), ticket.status,
                                             ticket.text, where, who, history))


async def _co_handler(session: AsyncSession, roles: list[Staff], ticket: Ticket) -> bool:
    parties = set((await session.execute(select(TicketParty.route).where(
        TicketParty.ticket_id == ticket.id))).scalars())
    return any(r.role in parties and (r.role != "grid_worker" or r.grid_id == ticket.grid_id) for r in roles)


async def _accept(session: AsyncSession, ctx: Context, roles: list[Staff], ticket: Ticket) -> Outcome:
    mine = owns(roles, ticket)
    if ticket.assignee_id is not None and mine and mine.id == ticket.assignee_id:
        return Outcome(texts.accepted_reply(ticket.number))  # accepting one's own ticket again: nothing to do
    role = may_take(roles, ticket)
    if role is None:
        return Outcome(texts.not_yours(ticket.number))
    if ticket.status != "dispatched" or ticket.assignee_id is not None:
        return Outcome(texts.already_taken(ticket.number))
    now = ctx.now()
    unit = Unit()
    unit.guards.append(update(Ticket).where(
        Ticket.id == ticket.id, Ticket.status == "dispatched", Ticket.assignee_id.is_(None)).values(
        status=ticket_rules.next_status("dispatched", "accept"), assignee_id=role.id,
        accepted_at=ticket.accepted_at or now, updated_at=now, **NEW_DEADLINE))  # now the resolve deadline counts
    unit.add(TicketEvent, ticket_id=ticket.id, at=now, actor=role.openid, action="accepted", note=signature(role))
    notify(unit, ticket.openid, texts.resident_accepted(ticket.number, signature(role)), now, ticket.id)
    return Outcome(texts.accepted_reply(ticket.number), unit, conflict_reply=texts.already_taken(ticket.number))


async def _staff_message(session: AsyncSession, ctx: Context, roles: list[Staff], ticket: Ticket,
                         words: str) -> Outcome:
    role = owns(roles, ticket) or (await _co_handler(session, roles, ticket) and roles[0]) or None
    if role is None:
        return Outcome(texts.not_yours(ticket.number))
    if not words:
        return Outcome(f"请写上要说的话，例如：回复 {ticket.number} 明天上午去看")
    now = ctx.now()
    unit = Unit()
    unit.add(TicketEvent, ticket_id=ticket.id, at=now, actor=role.openid, action="message", note=words[:500])
    notify(unit, ticket.openid, texts.staff_message(ticket.number, signature(role), words[:500]), now, ticket.id)
    return Outcome(texts.message_sent(ticket.number), unit)


async def _resident_message(session: AsyncSession, msg: Inbound, ctx: Context, number: str, words: str) -> Outcome:
    ticket = await repo.resident_ticket(session, msg.openid, number)
    if ticket is None:
        return Outcome(texts.ticket_not_found(number))
    if not words:
        return Outcome(f"请写上要说的话，例如：回复 {number} 我下午在家")
    if ticket.assignee_id is not None:
        recipients = [await session.get(Staff, ticket.assignee_id)]
    else:
        recipients = await dispatch.members(session, (ticket.route,), ticket.grid_id)
    now = ctx.now()
    unit = Unit()
    unit.add(TicketEvent, ticket_id=ticket.id, at=now, actor=msg.openid, action="message", note=words[:500])
    for staff in recipients:
        notify(unit, staff.openid, texts.resident_message(number, words[:500]), now, ticket.id)
    return Outcome(texts.message_sent(number), unit)


async def _resolve(ctx: Context, roles: list[Staff], ticket: Ticket, note: str) -> Outcome:
    role = owns(roles, ticket)
    if role is None:
        return Outcome(texts.not_yours(ticket.number))
    if not ticket_rules.allowed(ticket.status, "resolve"):
        return Outcome(texts.cannot_now(ticket.number, ticket.status))
    note = note or "已处理"
    now = ctx.now()
    unit = Unit()
    unit.guards.append(update(Ticket).where(Ticket.id == ticket.id, Ticket.status == ticket.status).values(
        status=ticket_rules.next_status(ticket.status, "resolve"), resolved_at=now, updated_at=now,
        solved=None, rating=None))
    unit.add(TicketEvent, ticket_id=ticket.id, at=now, actor=role.openid, action="resolved", note=note[:500])
    notify(unit, ticket.openid, texts.resident_resolved(ticket.number, note), now, ticket.id)

    async def photo_goes_with_it() -> None:  # a picture sent next is the proof of the work
        await ctx.state.set("last_ticket:" + role.openid, f"{ticket.id} {ticket.number}", ctx.attach_window_s)

    return Outcome(texts.resolved_reply(ticket.number), unit, [photo_goes_with_it],
                   conflict_reply=texts.cannot_now(ticket.number, "resolved"))


async def _reassign(session: AsyncSession, ctx: Context, roles: list[Staff], ticket: Ticket, rest: str) -> Outcome:
    target_name, _, reason = rest.partition(" ")
    target = _TARGETS.get(target_name.strip())
    if target is None:
        return Outcome(texts.UNKNOWN_TARGET)
    return await _redirect(session, ctx, roles, ticket, target, reason.strip(), "reassigned", "reassign")


async def _return(session: AsyncSession, ctx: Context, roles: list[Staff], ticket: Ticket, reason: str) -> Outcome:
    return await _redirect(session, ctx, roles, ticket, "duty_desk", reason, "returned", "return")


async def _redirect(session: AsyncSession, ctx: Context, roles: list[Staff], ticket: Ticket, target: str,
                    reason: str, event: str, action: str) -> Outcome:
    role = owns(roles, ticket) or may_take(roles, ticket) or next((r for r in roles if r.role == "duty_desk"), None)
    if role is None:
        return Outcome(texts.not_yours(ticket.number))
    if not reason:
        return Outcome(texts.NEED_REASON)
    if not ticket_rules.allowed(ticket.status, action):
        return Outcome(texts.cannot_now(ticket.number, ticket.status))
    now = ctx.now()
    unit = Unit()
    unit.guards.append(update(Ticket).where(
        Ticket.id == ticket.id, Ticket.status == ticket.status, Ticket.route == ticket.route).values(
        route=target, assignee_id=None, status=ticket_rules.next_status(ticket.status, action), updated_at=now,
        dispatched_at=now, **dispatch.fresh_deadlines(ticket, now, ctx.time_limits), **NEW_DEADLINE))  # the new body's own clock
    unit.deletes.append(delete(TicketParty).where(
        TicketParty.ticket_id == ticket.id, or_(TicketParty.lead.is_(True), TicketParty.route == target)))
    unit.add(TicketParty, ticket_id=ticket.id, route=target, lead=True)
    target_title = texts.ROUTE_NAMES.get(target, target)
    unit.add(TicketEvent, ticket_id=ticket.id, at=now, actor=role.openid, action=event,
             note=f"{target_title}：{reason[:200]}")
    where = await dispatch.where(session, dispatch.Place(ticket.grid_id, ticket.household_id))
    for member in await dispatch.members(session, (target,), ticket.grid_id):
        notify(unit, member.openid, texts.new_ticket_notice(
            ticket.number, _category_name(ticket.category), ticket.text, where,
            max((ticket.response_due - now).total_seconds() / 3600, 1) if ticket.response_due else 24, 1,
            lead=True), now, ticket.id)
    reply = texts.returned_reply(ticket.number) if action == "return" else texts.reassigned_reply(
        ticket.number, target_title)
    return Outcome(reply, unit, conflict_reply=texts.cannot_now(ticket.number, "reassigned"))


def _category_name(code: str) -> str:
    category = nlp.CATEGORIES.get(code)
    return category.name if category else code
