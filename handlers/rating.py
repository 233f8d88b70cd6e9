"""回访 and 评价: once a ticket is resolved, the resident says whether it is solved and rates the result.

The question is the resident's open question from the moment the ticket is resolved (`ask_later`): a digit
answers it only while no newer question replaced it (the welcome menu's 2 is 我的诉求, not 没解决). The
ticket itself remembers that it waits for an answer (status resolved, `rating` empty), so the question can
be asked again — by `评价 编号`, or when a bare digit comes and no question is known (the shared state
forgot it) — instead of a digit being taken for an answer to a question nobody remembers asking.
Not solved, or 不满意, reopens the ticket to its handler and tells the supervisor; 满意 / 基本满意 with the
problem solved closes it.
"""
from __future__ import annotations

import re

from sqlalchemy import select, update

from handlers import dispatch, texts, ticket_rules
from handlers.followup import NEW_DEADLINE
from handlers.notify import notify
from handlers.routing import QUESTION_KEY, Dialogue, Question, Router, Turn, dump_question
from handlers.types import Outcome
from storage.models import Staff, Ticket, TicketEvent
from storage.writer import Unit

router = Router("rating")
dialogue = router.dialogue(Dialogue("rating", timeout_setting="rating_timeout_s",
                                    exit_reply="好的，以后想评价，回复“评价 编号”。"))


async def ask_later(ctx, openid: str, ticket_id: int, number: str) -> None:
    """The resolved notice asks 问题解决了吗: from now on that is the resident's open question."""
    question = Question(dialogue.state("solved"), {"ticket": ticket_id, "number": number})
    await ctx.state.set(QUESTION_KEY + openid, dump_question(question), ctx.rating_timeout_s)


async def waiting(ctx, openid: str, number: str | None = None) -> Ticket | None:
    """The resident's most recently resolved ticket still waiting for their answer (or that one)."""
    query = select(Ticket).where(Ticket.openid == openid, Ticket.status == "resolved")
    if number is not None:
        query = query.where(Ticket.number == number)
    async with ctx.sessions() as session:
        return (await session.execute(query.order_by(Ticket.resolved_at.desc(), Ticket.id.desc()).limit(1))
                ).scalar_one_or_none()


def ask_again(turn: Turn, ticket: Ticket) -> Outcome:
    """Put the question (whichever of the two is still open) to the resident again."""
    if ticket.solved is None:
        turn.ask(dialogue.state("solved"), {"ticket": ticket.id, "number": ticket.number})
        return Outcome(texts.ask_solved_again(ticket.number))
    turn.ask(dialogue.state("score"), {"ticket": ticket.id, "number": ticket.number})
    return Outcome(texts.ask_rating(ticket.number))


@router.command(pattern=r"^评价\s*(\d{5,12})$")
async def rate_command(turn: Turn, m: re.Match) -> Outcome:
    ticket = await waiting(turn.ctx, turn.openid, m.group(1))
    if ticket is None:
        return Outcome(texts.nothing_to_rate(m.group(1)))
    return ask_again(turn, ticket)


@dialogue.step("solved")
async def solved(turn: Turn, data: dict) -> Outcome | None:
    return await _answer(turn, data, ("1", "2"))


@dialogue.step("score")
async def score(turn: Turn, data: dict) -> Outcome | None:
    return await _answer(turn, data, ("1", "2", "3"))


async def _answer(turn: Turn, data: dict, choices: tuple[str, ...]) -> Outcome | None:
    choice = turn.words
    if not choice.isdigit():
        return None  # words: a new matter, the question stays open
    ticket = await waiting(turn.ctx, turn.openid, data["number"])
    if ticket is None:  # rated meanwhile, closed as unrated, or reopened
        turn.done()
        return Outcome(texts.nothing_to_rate(data["number"]))
    if choice not in choices or (ticket.solved is None) != (len(choices) == 2):
        return ask_again(turn, ticket)
    return await _record(turn, ticket, int(choice))


async def _record(turn: Turn, ticket: Ticket, choice: int) -> Outcome:
    ctx, now = turn.ctx, turn.ctx.now()
    unit = Unit()
    same_round = (Ticket.id == ticket.id, Ticket.status == "resolved")
    if ticket.solved is None:
        unit.guards.append(update(Ticket).where(*same_round, Ticket.solved.is_(None)).values(
            solved=choice == 1, updated_at=now))
        unit.add(TicketEvent, ticket_id=ticket.id, at=now, actor=turn.openid, action="rated",
                 note="解决了" if choice == 1 else "没解决")
        turn.ask(dialogue.state("score"), {"ticket": ticket.id, "number": ticket.number})
        reply = texts.ask_rating(ticket.number, solved=choice == 1)
        return Outcome(reply, unit, conflict_reply=reply)
    good = ticket.solved and ticket_rules.satisfied(choice)
    action = "rate_good" if good else "rate_bad"
    values = dict(rating=choice, status=ticket_rules.next_status("resolved", action), updated_at=now)
    if good:
        values |= dict(closed_at=now, close_reason="rated")
    else:  # back to the handler, with a fresh resolution deadline of its own
        resolve_due = dispatch.fresh_deadlines(ticket, now, ctx.time_limits)["resolve_due"]
        values |= dict(reopen_count=ticket.reopen_count + 1, resolve_due=resolve_due, **NEW_DEADLINE)
    unit.guards.append(update(Ticket).where(*same_round, Ticket.rating.is_(None)).values(**values))
    unit.add(TicketEvent, ticket_id=ticket.id, at=now, actor=turn.openid, action="rated",
             note=texts.RATING_NAMES[choice])
    turn.done()
    if good:
        reply = texts.thanks_closed(ticket.number)
        return Outcome(reply, unit, conflict_reply=reply)
    unit.add(TicketEvent, ticket_id=ticket.id, at=now, actor="system", action="reopened", note="")
    notice = texts.staff_reopened(ticket.number, ticket.solved, choice)
    about = dispatch.ticket_subject(ticket.id, ticket.number, "reopened")
    for openid in await _handler_and_supervisors(ctx, ticket):
        notify(unit, openid, notice, now, about=about)
    reply = texts.reopened_reply(ticket.number, ticket.solved, choice)
    return Outcome(reply, unit, conflict_reply=reply)


async def _handler_and_supervisors(ctx, ticket: Ticket) -> list[str]:
    """The one who handled it, and the supervisors of its body."""
    async with ctx.sessions() as session:
        openids = []
        if ticket.assignee_id is not None and (handler := await session.get(Staff, ticket.assignee_id)):
            openids.append(handler.openid)
        heads = await dispatch.supervisors(session, ticket.route, ticket.grid_id)
    return list(dict.fromkeys(openids + [h.openid for h in heads]))
