"""The front door: the welcome menu (a numbered question like any other), help, and the menu's own words.

The menu asks "回复数字": 1 反映问题 2 我的诉求 3 查询进度 4 使用帮助. Those digits mean that only while the menu
is the last question asked; typed out, the labels do what the menu does.
"""
from __future__ import annotations

from handlers import rating, texts, tickets
from handlers.routing import Dialogue, Router, Turn
from handlers.types import Outcome

router = Router("welcome")
menu = router.dialogue(Dialogue("welcome", exit_reply="好的。有事直接打字告诉我。"))


def welcome(turn: Turn, text: str = texts.WELCOME) -> Outcome:
    turn.ask(menu.state("menu"))
    return Outcome(text)


@router.event("subscribe", "subscribe_scan", "scan")
async def subscribed(turn: Turn) -> Outcome:
    return welcome(turn)


@router.command("帮助", "help", "?", "菜单", "你好", "您好", "在吗", "hi", "hello", "开始")
async def greet(turn: Turn) -> Outcome:
    return welcome(turn)


@router.click("REPORT")
@router.command("反映问题", "反映", "投诉", "我要反映", "我要投诉")
async def how_to_report(turn: Turn) -> Outcome:
    turn.done()
    return Outcome(texts.HOW_TO_REPORT)


@router.click("QUERY")
async def how_to_query(turn: Turn) -> Outcome:
    turn.done()
    return Outcome(texts.HOW_TO_QUERY)


@router.click("MY_TICKETS")
async def my_tickets(turn: Turn) -> Outcome:
    return await tickets.list_tickets(turn)


@router.click("HELP")
@router.command("使用帮助", "怎么用", "使用方法")
async def usage(turn: Turn) -> Outcome:
    return welcome(turn, texts.HELP)


@menu.step("menu")
async def chosen(turn: Turn, _data: dict) -> Outcome | None:
    choice = turn.words
    if choice == "1":
        return await how_to_report(turn)
    if choice == "2":
        return await tickets.list_tickets(turn)
    if choice == "3":
        return await how_to_query(turn)
    if choice == "4":
        return welcome(turn, texts.HELP)
    if choice.isdigit() and len(choice) <= 2:
        return welcome(turn, texts.NOT_UNDERSTOOD)
    return None


@router.text
async def next_page_without_list(turn: Turn) -> Outcome | None:
    """`下一页` when no list is open (it ended, or timed out): say so rather than file the words."""
    return Outcome(texts.NO_MORE_PAGES) if turn.words in ("下一页", "下页", "更多") else None


@router.text
async def digit_without_question(turn: Turn) -> Outcome | None:
    """A small number when no question is open (it expired, or the shared state forgot it): a resolved
    ticket waiting for its rating asks again; otherwise the menu. Never a guess at what it answers."""
    if not (turn.words.isdigit() and len(turn.words) <= 2) or turn.question is not None:
        return None
    if (ticket := await rating.waiting(turn.ctx, turn.openid)) is not None:
        return rating.ask_again(turn, ticket)
    return welcome(turn, texts.NO_QUESTION)
