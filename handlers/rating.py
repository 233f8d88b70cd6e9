"""回访 and 评价: once a ticket is resolved, the resident says whether it is solved and rates the result.

The question state lives on the ticket itself (status resolved, `solved` and `rating` still empty), not
in the conversation store, so an answer days later still lands. Not solved, or 不满意, reopens the
ticket to its handler and tells the supervisor; 满意 / 基本满意 with the problem solved closes it.
"""
from __future__ import annotations

from sqlalchemy import select, update

from handlers import dispatch, texts, ticket_rules
from handlers.context import Context
from handlers.followup import NEW_DEADLINE
from handlers.notify import notify
from handlers.types import Inbound, Outcome
from storage.models import Staff, Ticket, TicketEvent
from storage.writer import Unit


async def awaiting(ctx: Context, openid: str) -> Ticket | None:
    """The resident's most recently resolved ticket still waiting for their answer."""
    async with ctx.sessions() as session:
        return (await session.execute(select(Ticket).where(
            Ticket.openid == openid, Ticket.status == "resolved").order_by(
            Ticket.resolved_at.desc(), Ticket.id.desc()).limit(1))).scalar_one_or_none()


async def answer(msg: Inbound, ctx: Context, ticket: Ticket) -> Outcome:
    choice = msg.text.strip()
    now = ctx.now()
    unit = Unit()
    same_round = (Ticket.id == ticket.id, Ticket.status == "resolved")
    if ticket.solved is None:
        if choice not in ("1", "2"):
            return Outcome(texts.ask_solved_again(ticket.number))
        unit.guards.append(update(Ticket).where(*same_round, Ticket.solved.is_(None)).values(
            solved=choice == "1", updated_at=now))
        unit.add(TicketEvent, ticket_id=ticket.id, at=now, actor=msg.openid, action="rated",
                 note="解决了" if choice == "1" else "没解决")
        return Outcome(texts.ask_rating(ticket.number), unit, conflict_reply=texts.ask_rating(ticket.number))
    if choice not in ("1", "2", "3"):
        return Outcome(texts.ask_rating(ticket.number))
    rating = int(choice)
    good = ticket.solved and ticket_rules.satisfied(rating)
    action = "rate_good" if good else "rate_bad"
    values = dict(rating=rating, status=ticket_rules.next_status("resolved", action), updated_at=now)
    if good:
        values |= dict(closed_at=now, close_reason="rated")
    else:  # back to the handler, with a fresh resolution deadline of its own
        resolve_due = dispatch.fresh_deadlines(ticket, now, ctx.time_limits)["resolve_due"]
        values |= dict(reopen_count=ticket.reopen_count + 1, resolve_due=resolve_due, **NEW_DEADLINE)
    unit.guards.append(update(Ticket).where(*same_round, Ticket.rating.is_(None)).values(**values))
    unit.add(TicketEvent, ticket_id=ticket.id, at=now, actor=msg.openid, action="rated",
             note=texts.RATING_NAMES[rating])
    if good:
        return Outcome(texts.thanks_closed(ticket.number), unit, conflict_reply=texts.thanks_closed(ticket.number))
    unit.add(TicketEvent, ticket_id=ticket.id, at=now, actor="system", action="reopened", note="")
    notice = texts.staff_reopened(ticket.number, ticket.solved, rating)
    for openid in await _handler_and_supervisors(ctx, ticket):
        notify(unit, openid, notice, now, ticket.id)
    return Outcome(texts.reopened_reply(ticket.number), unit, conflict_reply=texts.reopened_reply(ticket.number))


async def _handler_and_supervisors(ctx: Context, ticket: Ticket) -> list[str]:
    """The one who handled it, and the supervisors of its body."""
    async with ctx.sessions() as session:
        openids = []
        if ticket.assignee_id is not None and (handler := await session.get(Staff, ticket.assignee_id)):
            openids.append(handler.openid)
        heads = await dispatch.supervisors(session, ticket.route, ticket.grid_id)
    return list(dict.fromkeys(openids + [h.openid for h in heads]))
