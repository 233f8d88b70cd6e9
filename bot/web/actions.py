"""The console's ticket actions run the chat's own staff commands, as the staff member, through the same
path a chat message takes (handler -> Outcome -> its unit committed by the service's writer with an inbound
record). The rules live in handlers.staff only; this module is the one place that knows how to call it.

escalate (督办) has no chat command: in the console it hands the ticket up to the residents' committee
(`转派 N 居委会 督办：…`), which supervises grid work and bodies without a head (handlers.dispatch.supervisors);
a ticket already with the residents' committee goes back to the duty desk (`退回 N 督办：…`), whose admins
re-dispatch it. handlers.staff decides whether this person may do it, as in the chat.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from handlers import staff, texts
from handlers.types import Inbound, Outcome
from storage import tickets as repo
from storage.models import InboundMessage
from storage.writer import Conflict, Duplicate

log = logging.getLogger(__name__)

# the chat's reassign targets, as the console offers them (handlers.staff._TARGETS names)
TARGETS = {"grid_worker": "网格员", "property": "物业", "owners_committee": "业委会", "residents_committee": "居委会",
           "mediation": "调解", "duty_desk": "值班"}
ACTIONS = ("accept", "reply", "reassign", "resolve", "escalate")


def command_text(action: str, number: str, *, words: str = "", target: str = "", route: str = "") -> str | None:
    """The chat command a console action stands for; None for an unknown action or target."""
    words = " ".join(words.split())
    if action == "accept":
        return f"签收 {number}"
    if action == "reply":
        return f"回复 {number} {words}"
    if action == "resolve":
        return f"办结 {number} {words}".rstrip()
    if action == "reassign":
        return f"转派 {number} {TARGETS[target]} {words}".rstrip() if target in TARGETS else None
    if action == "escalate":
        reason = "督办：" + (words or "请加快办理")
        if route == "residents_committee":
            return f"退回 {number} {reason}"
        return f"转派 {number} {TARGETS['residents_committee']} {reason}"
    return None


async def run_staff_command(service, openid: str, text: str, key: str,
                            handle: Callable[[Inbound, object], Awaitable[Outcome | None]] = staff.run_command) -> str:
    """Run a staff command as this person; returns the reply the chat would have shown. `key` makes a retried
    form (a double click, a reload) act once: it is the unit's dedupe key, like a push's MsgId."""
    msg = Inbound(openid=openid, kind="text", received_at=service.ctx.now(), dedupe_key=f"console:{key}", text=text)
    outcome = await handle(msg, service.ctx)
    if outcome is None:
        return texts.NOT_UNDERSTOOD
    return await commit(service, msg, outcome, kind="console")


async def commit(service, msg: Inbound, outcome: Outcome, *, kind: str) -> str:
    """Commit an Outcome's unit with the inbound record, as bot/delivery.py does for a push: a stored key
    gives the stored reply, a lost guard the conflict reply; then wake the sender and run the after-commit
    steps. Returns the reply."""
    if outcome.unit is None:
        return outcome.reply or ""
    unit = outcome.unit
    unit.dedupe_key = msg.dedupe_key
    unit.add(InboundMessage, dedupe_key=msg.dedupe_key, openid=msg.openid, kind=kind, received_at=msg.received_at,
             reply=outcome.reply or "")
    try:
        await service.writer.submit(unit)
    except Duplicate:
        async with service.ctx.sessions() as session:
            return (await repo.stored_reply(session, msg.dedupe_key)) or ""
    except Conflict:
        return outcome.conflict_reply or texts.TRY_AGAIN_LATER
    if any(table.name == "outbox" for table, _ in unit.inserts):
        service.notices.set()  # wakes the outbox sender
    for step in outcome.after_commit:
        try:
            await step()
        except Exception as exc:  # shared state is an optimisation (as in bot/delivery.py)
            log.warning("after-commit step failed: %s", exc)
    return outcome.reply or ""
