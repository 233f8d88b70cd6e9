"""Which handler answers a message: menu click, command, conversation step, then the classifier."""
from __future__ import annotations

import re

import nlp
from handlers import accounts, rating, staff, texts, tickets
from handlers.context import Context
from handlers.types import Inbound, Outcome

_QUERY = re.compile(r"^\s*(?:查询|查|进度)\s*[:：]?\s*(\d{2,12})\s*$")
_QUERY_WITHOUT_NUMBER = re.compile(r"^\s*查询")
_MIN_COMPLAINT_CHARS = 5  # shorter and without a single keyword: not understood, ask instead of filing
_MY_TICKETS = {"我的诉求", "我的问题", "我的反映", "诉求", "2"}
_HELP = {"帮助", "help", "?", "？", "菜单", "4", "你好", "您好", "在吗"}
_REPORT_HINT = {"反映问题", "反映", "投诉", "1"}
_QUERY_HINT = {"查询", "查询进度", "3"}

# Menu CLICK keys (bot/menu.json) lead to the same functions as the typed commands.
_CLICKS = {"REPORT": "report", "MY_TICKETS": "my_tickets", "QUERY": "query", "HELP": "help", accounts.BIND_KEY: "bind"}


async def route(msg: Inbound, ctx: Context) -> Outcome:
    if msg.kind == "event":
        return await _event(msg, ctx)
    if msg.kind == "text":
        return await _text(msg, ctx, msg.text)
    if msg.kind == "voice" and msg.text and not await ctx.state.get("last_ticket:" + msg.openid):
        return await _text(msg, ctx, msg.text)  # speech recognised: as if typed
    if msg.kind in ("image", "location", "voice", "video", "shortvideo"):
        return await tickets.attach_media(msg, ctx)
    return Outcome(None)  # links, files and new kinds of message: WeChat gets `success`


async def _event(msg: Inbound, ctx: Context) -> Outcome:
    if msg.event in ("subscribe", "subscribe_scan", "scan"):
        return Outcome(texts.WELCOME)
    if msg.event == "click":
        return await _command(_CLICKS.get(msg.event_key, "help"), msg, ctx)
    return Outcome(None)  # unsubscribe, view, location reports …: nothing to say


async def _command(name: str, msg: Inbound, ctx: Context) -> Outcome:
    if name == "report":
        return Outcome(texts.HOW_TO_REPORT)
    if name == "my_tickets":
        return await tickets.list_tickets(msg, ctx)
    if name == "query":
        return Outcome(texts.HOW_TO_QUERY)
    if name == "bind":
        return await accounts.start_binding(msg, ctx)
    return Outcome(texts.HELP)


async def _text(msg: Inbound, ctx: Context, text: str) -> Outcome:
    text = text.strip()
    if not text:
        return Outcome(texts.HELP)
    conversation = await ctx.conversation(msg.openid)
    if (out := await accounts.handle(msg, ctx, conversation)) is not None:
        return out
    choosing = conversation.get("step") == "choose_category"
    if choosing and (answered := await tickets.choose_category(msg, ctx, conversation)) is not None:
        return answered
    if (handled := await staff.handle(msg, ctx)) is not None:
        return handled
    if text in ("1", "2", "3") and (resolved := await rating.awaiting(ctx, msg.openid)):
        return await rating.answer(msg, ctx, resolved)  # the last question they were asked
    if m := _QUERY.match(text):
        return await tickets.show_ticket(msg, ctx, m.group(1))
    if text in _MY_TICKETS:
        return await tickets.list_tickets(msg, ctx)
    if text.lower() in _HELP:
        return Outcome(texts.WELCOME)
    if text in _REPORT_HINT:
        return Outcome(texts.HOW_TO_REPORT)
    if text in _QUERY_HINT or _QUERY_WITHOUT_NUMBER.match(text):
        return Outcome(texts.HOW_TO_QUERY)
    if choosing and len(text) <= 6:  # not a command, too short to be a new complaint: ask again
        names = [nlp.CATEGORIES[c].name for c in conversation["options"]]
        return Outcome(texts.choose_again(names))
    # A longer message is a new matter; a ticket waiting for its category keeps its best guess.
    verdict = nlp.classify(text)
    if verdict.intent == "smalltalk":
        return Outcome(texts.SMALLTALK)
    if not verdict.keywords and len(text) < _MIN_COMPLAINT_CHARS and not verdict.emergency:
        return Outcome(texts.NOT_UNDERSTOOD)
    if verdict.intent == "status":
        return await tickets.list_tickets(msg, ctx)
    return await tickets.open_ticket(msg, ctx, text, verdict)
