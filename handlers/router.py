"""The hallway: every message passes the same stages, in this order, and the order is the precedence.

  1. normalise    NFKC, invisible characters out (handlers/normalise.py; the record keeps the original)
  2. emergency    an emergency in any words, in any state, past any limit: advice, a ticket, an alert
  3. limit        past the per-person rate limit: a polite reply, nothing stored
  4. events       subscribe, menu clicks (by key)
  5. commands     exact words, then patterns, router by router in the order included below
  6. the question the last question this person was asked (a bare digit answers it and nothing else)
  7. media        pictures, places, voice notes: attached to the ticket just opened
  8. free text    router by router: a small number with no question open, a code, an address, what the
                  service answers itself (or asks about), then a new matter
A command never falls into a dialogue: it is answered, and the dialogue stays open unless the answer asks
a new question. Adding a capability is its module and one `include_router` line here.
"""
from __future__ import annotations

import nlp
from handlers import accounts, answers, console_login, outcomes, rating, staff, texts, tickets, votes, welcome, wishes
from handlers.context import Context
from handlers.routing import QUESTION_KEY, Router, Table, Turn, dump_question, load_question
from handlers.types import Inbound, Outcome

# The capabilities, in the order of their precedence (the first router to claim a word keeps it). Adding one is
# its module and one line here. A module may declare STATE_KEYS (per-person keys read ahead with every message)
# and `scheduled(engine, settings)` (its jobs for the one scheduler).
CAPABILITIES = (
    welcome,
    accounts,
    wishes,  # before staff: `回复 <a wish's number>` is the wish's, any other number a ticket's
    staff,
    console_login,
    rating,
    answers,
    tickets,  # last: its free text files what nobody else took
)
BACKGROUND = (votes, outcomes)  # capabilities with jobs and no chat (yet)

root = Router("linli")
for capability in CAPABILITIES:
    root.include_router(capability.router)
TABLE = Table(root)

# Per-person state keys every message may need: read ahead with its dedupe claim, in the same round trip.
PERSON_KEYS = (QUESTION_KEY, *(key for c in CAPABILITIES for key in getattr(c, "STATE_KEYS", ())))


def scheduled_jobs(engine, settings) -> list:
    """Every capability's jobs, for the one scheduler: (name, interval_s, job(now)). `settings`: bot.config's."""
    return [job for c in CAPABILITIES + BACKGROUND if hasattr(c, "scheduled") for job in c.scheduled(engine, settings)]


async def route(msg: Inbound, ctx: Context, *, over_limit: bool = False) -> Outcome:
    """The reply (and the writes) for one message. `over_limit`: the person is past the rate limit."""
    raw = await ctx.state.get(QUESTION_KEY + msg.openid)
    turn = Turn(msg, ctx, load_question(raw))
    outcome = await _stages(turn, over_limit)
    await _keep_question(turn, outcome)
    return outcome


async def _stages(turn: Turn, over_limit: bool) -> Outcome:
    msg = turn.msg
    words = turn.text and (msg.kind == "text" or msg.kind == "voice")
    if words and (heard := await _emergency(turn)) is not None:
        return heard
    if over_limit:
        return Outcome(texts.RATE_LIMITED)
    if msg.kind == "event":
        handler = TABLE.clicks.get(msg.event_key) if msg.event == "click" else TABLE.events.get(msg.event)
        if handler is None:
            return Outcome(None)  # unsubscribe, view, location reports …: nothing to say
        return await handler(turn)
    if msg.kind == "text" or (msg.kind == "voice" and msg.text and not await tickets.attaching(turn)):
        if not turn.text:
            return welcome.welcome(turn)
        if (out := await TABLE.command(turn)) is not None:
            return out
        if (out := await TABLE.answer(turn)) is not None:
            return out
        for handler in TABLE.free_text:
            if (out := await handler(turn)) is not None:
                return out
        return welcome.welcome(turn, texts.NOT_UNDERSTOOD)
    if (handler := TABLE.media.get(msg.kind)) is not None:
        return await handler(turn)
    return Outcome(None)  # links, files and new kinds of message: WeChat gets `success`


async def _emergency(turn: Turn) -> Outcome | None:
    """Stage 2: the emergency words are looked for first, before any dialogue or limit can take them. A staff
    member's command about a ticket ("办结 100009 火已扑灭") is work on that ticket, not a new emergency."""
    if nlp.emergency(turn.text) is None:
        return None
    if staff.is_ticket_command(turn.words) and await turn.ctx.directory.is_staff(turn.openid):
        return None
    return await tickets.open_ticket(turn)


async def _keep_question(turn: Turn, outcome: Outcome) -> None:
    """Save the question this reply asked (or forget the one it closed), once the message's writes commit."""
    asked = turn.asked
    if asked is Turn.UNCHANGED or (asked is None and turn.question is None):
        return
    ctx, key = turn.ctx, QUESTION_KEY + turn.openid

    async def save() -> None:
        if asked is None:
            await ctx.state.delete(key)
        else:
            await ctx.state.set(key, dump_question(asked), TABLE.timeout_of(asked, ctx))

    if outcome.unit is not None:
        outcome.after_commit.append(save)
    else:
        await save()
