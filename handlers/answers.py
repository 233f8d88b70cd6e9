"""The front desk: what the service answers itself instead of filing a ticket, and the question it asks when
a message is not clearly a problem ("是要反映问题吗？1 是 2 不是").

The classifier says what a message is (nlp Verdict.filing: "file", "ask" or "answer:<kind>", docs/nlp.md);
this router acts on the last two. Questions about the community (怎么联系居委会, 几点上班) are answered from
its settings (`linli community set`). Its free text runs after the codes and addresses of accounts and before
tickets' intake, which files what is left.
"""
from __future__ import annotations

from handlers import accounts, texts, tickets, welcome
from handlers.normalise import has_han
from handlers.routing import Dialogue, Router, Turn
from handlers.types import Outcome
from storage.community import community_of

router = Router("answers")
confirm = router.dialogue(Dialogue("answers", exit_reply=texts.NOT_A_PROBLEM))
_YES, _NO = {"1", "是", "是的", "对", "要", "记下来"}, {"2", "不是", "不", "不用", "否", "没有"}


@router.text
async def by_filing(turn: Turn) -> Outcome | None:
    if turn.words.isdigit():
        return None  # a number alone: tickets' business (a tracking number, or nothing)
    filing = turn.verdict.filing
    if filing == "file":
        return None
    if filing == "ask":
        if not has_han(turn.text):
            return None  # "asdf", "???": tickets shows the menu
        if (last := await tickets.last_ticket(turn)) is not None:
            return tickets.attach_words(turn, *last)  # 就在3栋门口, right after the report: part of it
        turn.ask(confirm.state("problem"), {"text": turn.msg.text})
        return Outcome(texts.ASK_IF_PROBLEM)
    return await answer(turn, filing.removeprefix("answer:"))


async def answer(turn: Turn, kind: str) -> Outcome:
    if kind == "help":
        return welcome.welcome(turn, texts.HELP)
    if kind == "report":
        return await welcome.how_to_report(turn)
    if kind in ("my_tickets", "status"):
        return await tickets.list_tickets(turn)
    if kind == "query":
        return await welcome.how_to_query(turn)
    if kind == "bind":
        return await accounts.start_binding(turn)
    if kind == "who":
        return Outcome(texts.WHO_WE_ARE)
    if kind in ("contact", "hours"):
        async with turn.ctx.sessions() as session:
            c = await community_of(session, turn.openid)
        if c is None:
            return Outcome(texts.community_contact("", "", "", ""))
        return Outcome(texts.community_contact(c.name, c.phone, c.office_hours, c.office_address))
    if kind == "thanks":
        return Outcome(texts.SMALLTALK)
    if kind == "greeting":
        return welcome.welcome(turn)
    return Outcome(texts.ACK)


@confirm.step("problem")
async def is_it_a_problem(turn: Turn, data: dict) -> Outcome | None:
    if turn.words in _YES:
        turn.rewrite(data["text"])
        turn.done()
        return await tickets.open_ticket(turn)
    if turn.words in _NO:
        turn.done()
        return Outcome(texts.NOT_A_PROBLEM)
    return None  # other words: a message of its own
