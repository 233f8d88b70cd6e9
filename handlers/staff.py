"""Staff work in WeChat: list, accept (签收), message the resident, resolve (办结), reassign (转派), return (退回).

Who may do what (首接负责: once a ticket is accepted, it is its assignee's):
- a ticket waiting to be accepted may be taken by a member of the body it is routed to (grid workers only
  in their own grid) or by an admin; two people accepting at once: exactly one wins (a guarded update);
- once accepted, only its assignee, an admin or a supervisor (a head of its body, or of the residents'
  committee) may message the resident about it, reassign or return it; only the assignee or an admin
  resolves it; co-handlers of a 三方联动 matter may message the resident too;
- before it is accepted, members of its body, the duty desk, admins and supervisors may reassign or return it;
- whoever held a ticket is told when someone else moves it on; residents are told in plain words;
- residents may message about their own tickets with the same `回复 编号 内容` command.
Staff see resident details only on tickets they may act on; phone numbers are masked.
"""
from __future__ import annotations

import re

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers import dispatch, texts, ticket_rules
from handlers.followup import NEW_DEADLINE
from handlers.hotspots import cluster_sizes
from handlers.notify import mask_phone, notify
from handlers.routing import Dialogue, Router, Turn
from handlers.types import Outcome
from storage import tickets as repo
from storage.accounts import ROLE_NAMES, staff_roles
from storage.models import Grid, Resident, Staff, Ticket, TicketEvent, TicketParty
from storage.writer import Unit

router = Router("staff")
lists = router.dialogue(Dialogue("staff.list", exit_reply="好的。"))

_LIST = {"工单": "all", "我的工单": "all", "待签收": "waiting", "办理中": "doing", "逾期": "late"}
_TITLES = {"all": "全部工单", "waiting": "待签收", "doing": "办理中", "late": "逾期"}
_VERBS = "签收|办结|回复|转派|退回|工单"
COMMAND = re.compile(rf"^({_VERBS})\s*(\d{{5,12}})\s*(.*)$", re.S)
_TARGETS = {"网格员": "grid_worker", "网格": "grid_worker", "物业": "property", "业委会": "owners_committee",
            "居委会": "residents_committee", "调解": "mediation", "调解委员会": "mediation", "值班": "duty_desk"}
_MORE = {"下一页", "下页", "更多", "继续", "n", "next"}


def is_ticket_command(words: str) -> bool:
    return bool(COMMAND.match(words))


# ---- who may do what (pure: the roles a person holds and the ticket) -------------------------------

def may_take(roles: list[Staff], ticket: Ticket) -> Staff | None:
    """The role under which this person may accept the ticket (its lead body, or an admin)."""
    for role in roles:
        if role.role == "admin" or (role.role == ticket.route and (
                role.role != "grid_worker" or role.grid_id == ticket.grid_id)):
            return role
    return None


def supervising(roles: list[Staff], ticket: Ticket) -> Staff | None:
    """An admin, or a head of the ticket's body (of the residents' committee for grid work and for bodies
    without heads of their own): those who 督办 it."""
    return next((r for r in roles if r.role == "admin"), None) or next(
        (r for r in roles if r.is_head and r.role in (ticket.route, "residents_committee")), None)


def assignee(roles: list[Staff], ticket: Ticket) -> Staff | None:
    return next((r for r in roles if ticket.assignee_id is not None and r.id == ticket.assignee_id), None)


def owns(roles: list[Staff], ticket: Ticket) -> Staff | None:
    """The role that accepted the ticket, or an admin's."""
    return assignee(roles, ticket) or next((r for r in roles if r.role == "admin"), None)


def may_move(roles: list[Staff], ticket: Ticket) -> Staff | None:
    """Who may reassign or return it: once accepted, its assignee or a supervisor; before, also its body and
    the duty desk."""
    if ticket.assignee_id is not None:
        return assignee(roles, ticket) or supervising(roles, ticket)
    return may_take(roles, ticket) or supervising(roles, ticket) or next(
        (r for r in roles if r.role == "duty_desk"), None)


def co_handling(roles: list[Staff], ticket: Ticket, parties: set[str]) -> Staff | None:
    """A role of a 三方联动 co-handler (a body the ticket is copied to, not its lead)."""
    return next((r for r in roles if r.role in parties and r.role != ticket.route and r.role != "grid_worker"), None)


def alerted(roles: list[Staff], ticket: Ticket) -> Staff | None:
    """A role that was alerted to this emergency (dispatch.plan's alert routes): it may open the ticket."""
    return next((r for r in roles if r.role == "duty_desk" or (r.role == "residents_committee" and r.is_head)
                 or (r.role == "grid_worker" and r.grid_id == ticket.grid_id)), None)


def signature(role: Staff) -> str:
    """How a staff member is named to residents: the unit and a surname, never a phone number."""
    name = role.name[:1] + "*" * max(len(role.name) - 1, 0) if role.name else ""
    return f"{ROLE_NAMES.get(role.role, '工作人员')}{name}"


def real_name(role: Staff) -> str:
    """How staff name each other: the unit and the whole name."""
    return f"{ROLE_NAMES.get(role.role, role.role)}{role.name}"


# ---- the commands ---------------------------------------------------------------------------------

@router.command(*_LIST)
async def list_command(turn: Turn) -> Outcome:
    async with turn.ctx.sessions() as session:
        roles = await staff_roles(session, turn.openid)
        if not roles:
            return Outcome(texts.NOT_STAFF)
        return await _page(session, turn, roles, _LIST[turn.words], 0)


@router.command("工单帮助", "工作台")
async def staff_help(turn: Turn) -> Outcome:
    async with turn.ctx.sessions() as session:
        return Outcome(texts.STAFF_HELP if await staff_roles(session, turn.openid) else texts.NOT_STAFF)


@router.command(pattern=rf"^({_VERBS})$")
async def verb_without_number(turn: Turn, _m: re.Match) -> Outcome:
    return Outcome(texts.NEED_NUMBER)


@router.command(pattern=COMMAND.pattern)
async def ticket_command(turn: Turn, match: re.Match) -> Outcome:
    """签收 / 回复 / 办结 / 转派 / 退回 / 工单 + a number; `回复` from a resident is about their own ticket."""
    verb, number, rest = match.group(1), match.group(2), match.group(3).strip()
    ctx = turn.ctx
    async with ctx.sessions() as session:
        roles = await staff_roles(session, turn.openid)
        if verb == "回复" and not roles:
            return await _resident_message(session, turn, number, rest)
        if not roles:
            return Outcome(texts.NOT_STAFF)
        ticket = (await session.execute(select(Ticket).where(Ticket.number == number))).scalar_one_or_none()
        if ticket is None:
            return Outcome(texts.not_yours(number))
        if verb == "工单":
            return await _detail(session, roles, ticket)
        if verb == "签收":
            return await _accept(ctx, roles, ticket)
        if verb == "回复":
            return await _staff_message(session, ctx, roles, ticket, rest)
        if verb == "办结":
            return await _resolve(ctx, roles, ticket, rest)
        if verb == "转派":
            return await _reassign(session, ctx, roles, ticket, rest)
        return await _redirect(session, ctx, roles, ticket, "duty_desk", None, rest, "return")


async def run_command(msg, ctx) -> Outcome | None:
    """A ticket command from outside the chat (the web console) as this person: the very handler the chat
    runs; None when the text is no such command."""
    turn = Turn(msg, ctx)
    match = COMMAND.match(turn.words)
    return await ticket_command(turn, match) if match else None


# ---- lists: the most urgent first, a page at a time -----------------------------------------------

async def _page(session: AsyncSession, turn: Turn, roles: list[Staff], which: str, offset: int) -> Outcome:
    now = turn.ctx.now()
    visible = repo.visible_to(roles)
    total, rows = await repo.staff_queue(session, visible, which, now, offset, texts.STAFF_PAGE)
    if not rows:
        turn.done()
        if offset:
            return Outcome(texts.NO_MORE_PAGES)
        if which == "late":
            counts = await repo.staff_counts(session, visible, now)
            if counts["waiting"] or counts["doing"]:
                return Outcome(texts.nothing_late(counts))
        return Outcome(texts.NO_WORK)
    sizes = await cluster_sizes(session, {t.cluster_id for t in rows if t.cluster_id})
    lines = [texts.staff_ticket_line(t.number, texts.category_name(t.category), t.text, _due(t), now,
                                     sizes.get(t.cluster_id, 1), bool(t.emergency)) for t in rows]
    reply = texts.staff_list(_TITLES[which], total, offset, lines)
    if which == "all" and offset == 0:
        reply = texts.staff_summary(await repo.staff_counts(session, visible, now)) + "\n" + reply
    if offset + len(rows) < total:
        turn.ask(lists.state("page"), {"which": which, "offset": offset + len(rows)})
    else:
        turn.done()
    return Outcome(reply)


@lists.step("page")
async def next_page(turn: Turn, data: dict) -> Outcome | None:
    if turn.words.casefold() not in _MORE:
        return None
    async with turn.ctx.sessions() as session:
        roles = await staff_roles(session, turn.openid)
        if not roles:
            turn.done()
            return Outcome(texts.NOT_STAFF)
        return await _page(session, turn, roles, data["which"], int(data["offset"]))


def _due(t: Ticket):
    return t.response_due if t.status == "dispatched" else t.resolve_due


# ---- one ticket -------------------------------------------------------------------------------------

async def _parties(session: AsyncSession, ticket: Ticket) -> set[str]:
    return set((await session.execute(select(TicketParty.route).where(
        TicketParty.ticket_id == ticket.id, TicketParty.lead.is_(False)))).scalars())


async def _detail(session: AsyncSession, roles: list[Staff], ticket: Ticket) -> Outcome:
    if not (may_take(roles, ticket) or owns(roles, ticket) or supervising(roles, ticket)
            or co_handling(roles, ticket, await _parties(session, ticket))
            or (ticket.emergency and alerted(roles, ticket))):
        return Outcome(texts.not_yours(ticket.number))
    resident = await session.get(Resident, ticket.openid)
    who = f"{resident.name or '居民'} {mask_phone(resident.phone)}" if resident and resident.phone else (
        resident.name if resident else "")
    where = await dispatch.where(session, dispatch.Place(ticket.grid_id, ticket.household_id))
    handler = await session.get(Staff, ticket.assignee_id) if ticket.assignee_id is not None else None
    history = texts.timeline(await repo.timeline(session, ticket.id), for_staff=True)
    return Outcome(texts.staff_ticket_detail(ticket.number, texts.category_name(ticket.category), ticket.status,
                                             ticket.text, where, who, history,
                                             handler=real_name(handler) if handler else ""))


async def _accept(ctx, roles: list[Staff], ticket: Ticket) -> Outcome:
    mine = assignee(roles, ticket)
    if mine is not None:
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
    _event(unit, ticket, role, "accepted", signature(role), now)
    notify(unit, ticket.openid, texts.resident_accepted(ticket.number, signature(role),
                                                   texts.ticket_link(ctx.public_url, ticket.number)), now,
           about=dispatch.ticket_subject(ticket.id, ticket.number, "accepted"))
    return Outcome(texts.accepted_reply(ticket.number), unit, conflict_reply=texts.already_taken(ticket.number))


async def _staff_message(session: AsyncSession, ctx, roles: list[Staff], ticket: Ticket, words: str) -> Outcome:
    role = (assignee(roles, ticket) or supervising(roles, ticket)
            or (may_take(roles, ticket) if ticket.assignee_id is None else None)
            or co_handling(roles, ticket, await _parties(session, ticket)))
    if role is None:
        return Outcome(texts.not_yours(ticket.number))
    if not words:
        return Outcome(f"请写上要说的话，例如：回复 {ticket.number} 明天上午去看")
    now = ctx.now()
    unit = Unit()
    _event(unit, ticket, role, "message", words[:500], now)
    notify(unit, ticket.openid, texts.staff_message(ticket.number, signature(role), words[:500]), now,
           about=dispatch.ticket_subject(ticket.id, ticket.number, ticket.status))
    return Outcome(texts.message_sent(ticket.number), unit)


async def _resident_message(session: AsyncSession, turn: Turn, number: str, words: str) -> Outcome:
    ticket = await repo.resident_ticket(session, turn.openid, number)
    if ticket is None:
        return Outcome(texts.ticket_not_found(number))
    if not words:
        return Outcome(f"请写上要说的话，例如：回复 {number} 我下午在家")
    if ticket.assignee_id is not None:
        recipients = [await session.get(Staff, ticket.assignee_id)]
    else:
        recipients = await dispatch.members(session, (ticket.route,), ticket.grid_id)
    now = turn.ctx.now()
    unit = Unit()
    unit.add(TicketEvent, ticket_id=ticket.id, at=now, actor=turn.openid, action="message", note=words[:500])
    for staff in recipients:
        notify(unit, staff.openid, texts.resident_message(number, words[:500]), now,
               about=dispatch.ticket_subject(ticket.id, ticket.number, ticket.status))
    return Outcome(texts.message_sent(number), unit)


async def _resolve(ctx, roles: list[Staff], ticket: Ticket, note: str) -> Outcome:
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
    _event(unit, ticket, role, "resolved", note[:500], now)
    notify(unit, ticket.openid, texts.resident_resolved(ticket.number, note, texts.ticket_link(ctx.public_url, ticket.number)),
           now,
           about=dispatch.ticket_subject(ticket.id, ticket.number, "resolved"))
    from handlers import rating  # the rating question is the resident's next one

    async def after() -> None:
        await ctx.state.set("last_ticket:" + role.openid, f"{ticket.id} {ticket.number}", ctx.attach_window_s)
        await rating.ask_later(ctx, ticket.openid, ticket.id, ticket.number)

    return Outcome(texts.resolved_reply(ticket.number), unit, [after],
                   conflict_reply=texts.cannot_now(ticket.number, "resolved"))


async def _reassign(session: AsyncSession, ctx, roles: list[Staff], ticket: Ticket, rest: str) -> Outcome:
    target_name, _, reason = rest.partition(" ")
    target = _TARGETS.get(target_name.strip())
    if target is None:
        return Outcome(texts.UNKNOWN_TARGET)
    reason, grid = reason.strip(), None
    if target == "grid_worker" and ticket.grid_id is None:  # an unbound resident's ticket: which grid?
        first, _, after = reason.partition(" ")
        grid = await _grid_named(session, first)
        if grid is None:
            names = list((await session.execute(select(Grid.code).order_by(Grid.id))).scalars())
            return Outcome(texts.grid_needed(ticket.number, names))
        reason = after.strip()
    return await _redirect(session, ctx, roles, ticket, target, grid, reason, "reassign")


async def _grid_named(session: AsyncSession, word: str) -> Grid | None:
    if not word:
        return None
    rows = list((await session.execute(select(Grid).where(or_(Grid.code == word, Grid.name == word)))).scalars())
    return rows[0] if len(rows) == 1 else None


async def _redirect(session: AsyncSession, ctx, roles: list[Staff], ticket: Ticket, target: str,
                    grid: Grid | None, reason: str, action: str) -> Outcome:
    role = may_move(roles, ticket)
    if role is None:
        return Outcome(texts.not_yours(ticket.number))
    if not reason:
        return Outcome(texts.NEED_REASON)
    if not ticket_rules.allowed(ticket.status, action):
        return Outcome(texts.cannot_now(ticket.number, ticket.status))
    now = ctx.now()
    grid_id = grid.id if grid is not None else ticket.grid_id
    unit = Unit()
    unit.guards.append(update(Ticket).where(
        Ticket.id == ticket.id, Ticket.status == ticket.status, Ticket.route == ticket.route,
        Ticket.assignee_id.is_(None) if ticket.assignee_id is None else Ticket.assignee_id == ticket.assignee_id
    ).values(route=target, grid_id=grid_id, assignee_id=None, status=ticket_rules.next_status(ticket.status, action),
             updated_at=now, dispatched_at=now, **dispatch.fresh_deadlines(ticket, now, ctx.time_limits),
             **NEW_DEADLINE))  # the new body's own clock
    unit.deletes.append(delete(TicketParty).where(
        TicketParty.ticket_id == ticket.id, or_(TicketParty.lead.is_(True), TicketParty.route == target)))
    unit.add(TicketParty, ticket_id=ticket.id, route=target, lead=True)
    _event(unit, ticket, role, "reassigned" if action == "reassign" else "returned", f"{target}：{reason[:200]}", now)
    target_title = texts.ROUTE_NAMES.get(target, target)
    about = dispatch.ticket_subject(ticket.id, ticket.number, "dispatched")
    where = await dispatch.where(session, dispatch.Place(grid_id, ticket.household_id))
    response_hours = max((ticket.response_due - now).total_seconds() / 3600, 1) if ticket.response_due else 24
    newcomers = await dispatch.members(session, (target,), grid_id)
    dispatch.notify_new_ticket(unit, newcomers, target, number=ticket.number,
                               category_name=texts.category_name(ticket.category), text=ticket.text, where=where,
                               response_hours=response_hours, households=1, emergency=ticket.emergency, now=now,
                               about=about)
    if ticket.assignee_id is not None and ticket.assignee_id != role.id:  # the one who held it hears of it
        previous = await session.get(Staff, ticket.assignee_id)
        if previous is not None and previous.openid not in {m.openid for m in newcomers}:
            verb = "转派" if action == "reassign" else "退回"
            notify(unit, previous.openid, texts.previous_handler_told(ticket.number, verb, real_name(role),
                                                                      ROLE_NAMES.get(target, target)),
                   now, about=about)
    notify(unit, ticket.openid, texts.resident_reassigned(ticket.number, target_title) if action == "reassign"
           else texts.resident_returned(ticket.number), now, about=about)
    reply = texts.returned_reply(ticket.number) if action == "return" else texts.reassigned_reply(
        ticket.number, target_title)
    return Outcome(reply, unit, conflict_reply=texts.cannot_now(ticket.number, "reassigned"))


def _event(unit: Unit, ticket: Ticket, role: Staff, action: str, note: str, now) -> None:
    unit.add(TicketEvent, ticket_id=ticket.id, at=now, actor=role.openid, action=action, note=note)
