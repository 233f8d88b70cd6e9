"""Who is writing: residents bind to a household, staff bind a role with a one-time invite code.

A resident binds by a short dialogue (conversation steps "bind_address", "bind_choose", "bind_owner"):
a household code the community handed out binds at once; a typed address waits for the grid worker's
"确认 XXXX". A staff role is never self-declared: only an invite code made by `linli staff invite` gives one.
"""
from __future__ import annotations

import re

from sqlalchemy import update

from handlers import account_texts as T
from handlers.context import Context
from handlers.notify import notify
from handlers.types import Inbound, Outcome
from storage.accounts import (claim_invite, grid_workers, invite_code_in, pending_residents, short_id, staff_of_roles,
                              staff_roles)
from storage.address import parse_address
from storage.community import Place, find_places, household_place, place_by_code
from storage.models import Grid, Resident
from storage.writer import Unit

__all__ = ["handle", "staff_roles", "BIND_KEY"]

BIND_KEY = "BIND"  # menu CLICK key
_BIND_WORDS = {"绑定", "绑定房屋", "绑定住址", "绑定地址", "绑定房子", "我要绑定", "住户绑定", "绑定户号", "换绑"}
_BIND_WITH = re.compile(r"^绑定(?:房屋|住址|地址|户号)?\s*[:：]?\s*(\S.*)$")
_WHO = {"我的身份", "我是谁", "我的信息", "身份"}
_EXIT = {"0", "退出", "取消", "算了", "不绑了", "不绑定"}
_YES = {"1", "是", "是的", "对", "业主", "我是业主"}
_NO = {"2", "不是", "否", "不", "租户", "家属", "租房", "不是业主"}
_CONFIRM = re.compile(r"^(确认|拒绝)\s*(?:绑定)?\s*([A-Za-z0-9]{4})$")
_HOUSEHOLD_CODE_LIKE = re.compile(r"^(?=.*[A-Za-z])(?=.*[0-9])[A-Za-z0-9-]{4,16}$")
_PENDING_WORDS = {"待确认", "确认绑定", "绑定申请", "待确认绑定"}
_MAX_TRIES = 3  # wrong answers before the dialogue gives up kindly
_NEW_MATTER_CHARS = 12  # a longer message that is no address is a new matter, not an answer
_EVERY_GRID = {"admin", "duty_desk"}  # may confirm bindings in any grid


async def handle(msg: Inbound, ctx: Context, conversation: dict) -> Outcome | None:
    """Answer binding, identity and invite messages; None when the message is not about accounts."""
    if msg.kind == "event":
        return await start_binding(msg, ctx) if msg.event == "click" and msg.event_key == BIND_KEY else None
    text = (msg.text or "").strip()
    if not text:
        return None
    if str(conversation.get("step", "")).startswith("bind"):
        if (answered := await _continue_binding(msg, ctx, conversation, text)) is not None:
            return answered
    if text in _BIND_WORDS:
        return await start_binding(msg, ctx)
    if m := _BIND_WITH.match(text):
        return await _address_or_code(msg, ctx, m.group(1).strip(), {"step": "bind_address", "tries": 0})
    if text in _WHO:
        return await who_am_i(msg, ctx)
    invite = invite_code_in(text)
    if invite and (answered := await _use_invite(msg, ctx, *invite)) is not None:
        return answered
    if _HOUSEHOLD_CODE_LIKE.match(text):  # a household code sent without "绑定" first
        async with ctx.sessions() as session:
            if await place_by_code(session, text):
                return await _address_or_code(msg, ctx, text, {"step": "bind_address", "tries": 0})
    if invite:
        return Outcome(T.INVITE_UNKNOWN)  # shaped like our codes: say so rather than file it as a complaint
    if (m := _CONFIRM.match(text)) or text in _PENDING_WORDS:
        return await _confirm_binding(msg, ctx, m)
    return None


# ---- residents: the binding dialogue ------------------------------------------------------------

async def start_binding(msg: Inbound, ctx: Context) -> Outcome:
    async with ctx.sessions() as session:
        resident = await session.get(Resident, msg.openid)
        place = None
        if resident is not None and resident.household_id is not None and resident.status in ("bound", "pending"):
            place = await household_place(session, resident.household_id)
    await ctx.set_conversation(msg.openid, {"step": "bind_address", "tries": 0})
    if place is not None:
        return Outcome(T.already_bound(place.label(), resident.status == "pending"))
    return Outcome(T.ASK_ADDRESS)


async def _continue_binding(msg: Inbound, ctx: Context, conversation: dict, text: str) -> Outcome | None:
    if text in _EXIT:
        await ctx.end_conversation(msg.openid)
        return Outcome(T.EXITED)
    step = conversation["step"]
    if step == "bind_choose":
        options: list[int] = conversation["options"]
        if text.isascii() and text.isdigit() and 1 <= int(text) <= len(options):
            async with ctx.sessions() as session:
                place = await household_place(session, options[int(text) - 1])
            return await _ask_owner(msg, ctx, place, "address")
        if parse_address(text) is None:
            return await _retry(msg, ctx, conversation, T.choose_household(conversation["labels"]))
        return await _address_or_code(msg, ctx, text, {"step": "bind_address", "tries": 0})
    if step == "bind_owner":
        if text in _YES or text in _NO:
            return await _finish(msg, ctx, conversation, is_owner=text in _YES)
        return await _retry(msg, ctx, conversation, T.OWNER_AGAIN)
    return await _address_or_code(msg, ctx, text, conversation)


async def _address_or_code(msg: Inbound, ctx: Context, text: str, conversation: dict) -> Outcome | None:
    async with ctx.sessions() as session:
        by_code = await place_by_code(session, text)
        places = [by_code] if by_code else await find_places(session, text)
    if len(places) == 1:
        return await _ask_owner(msg, ctx, places[0], "code" if by_code else "address")
    if len(places) > 1:
        labels = [p.label() for p in places[:9]]
        await ctx.set_conversation(msg.openid, {"step": "bind_choose", "tries": 0, "labels": labels,
                                                "options": [p.household_id for p in places[:9]]})
        return Outcome(T.choose_household(labels))
    if parse_address(text) is None:
        # "楼下垃圾没人收……" is a complaint and "K7Q2M9XA" an invite code: leave the dialogue, let them be handled.
        if len(text) > _NEW_MATTER_CHARS or invite_code_in(text):
            await ctx.end_conversation(msg.openid)
            return None
        return await _retry(msg, ctx, conversation, T.ADDRESS_NOT_UNDERSTOOD)
    return await _retry(msg, ctx, conversation, T.address_not_found(text))


async def _retry(msg: Inbound, ctx: Context, conversation: dict, question: str) -> Outcome:
    """Ask again, a few times; then stop kindly rather than trap the resident in the dialogue."""
    tries = int(conversation.get("tries", 0)) + 1
    if tries >= _MAX_TRIES:
        await ctx.end_conversation(msg.openid)
        return Outcome(T.GIVE_UP)
    await ctx.set_conversation(msg.openid, {**conversation, "tries": tries})
    return Outcome(question)


async def _ask_owner(msg: Inbound, ctx: Context, place: Place, via: str) -> Outcome:
    await ctx.set_conversation(msg.openid, {"step": "bind_owner", "tries": 0, "household": place.household_id,
                                            "label": place.label(), "via": via})
    return Outcome(T.ask_owner(place.label()))


async def _finish(msg: Inbound, ctx: Context, conversation: dict, *, is_owner: bool) -> Outcome:
    """A household code binds now; a typed address waits for the grid worker, who is told."""
    now = ctx.now()
    by_code = conversation["via"] == "code"
    async with ctx.sessions() as session:
        resident = await session.get(Resident, msg.openid)
        place = await household_place(session, conversation["household"])
        confirmers = [] if by_code else (await grid_workers(session, place.grid_id)
                                         or await staff_of_roles(session, _EVERY_GRID))
    values = dict(household_id=place.household_id, is_owner=is_owner, status="bound" if by_code else "pending",
                  bound_at=now if by_code else None)
    unit = Unit()
    if resident is None:
        unit.add(Resident, openid=msg.openid, name="", phone="", created_at=now, **values)
    else:
        unit.updates.append(update(Resident).where(Resident.openid == msg.openid).values(**values))
    for openid in dict.fromkeys(s.openid for s in confirmers):
        notify(unit, openid, T.worker_notice(place.label(), is_owner, short_id(msg.openid)), now)

    async def done() -> None:
        await ctx.end_conversation(msg.openid)
        await ctx.directory.changed(ctx.state)  # routing must see the new (or no longer confirmed) home

    reply = T.bound(place.label(), is_owner) if by_code else T.pending(place.label())
    return Outcome(reply, unit, [done])


# ---- grid workers: confirming a typed address ---------------------------------------------------

async def _confirm_binding(msg: Inbound, ctx: Context, command: re.Match | None) -> Outcome | None:
    """'确认 K7Q2' / '拒绝 K7Q2' from a grid worker of that household's grid; '待确认' lists them."""
    async with ctx.sessions() as session:
        roles = await staff_roles(session, msg.openid)
        grids = {r.grid_id for r in roles if r.role == "grid_worker" and r.grid_id is not None}
        everywhere = any(r.role in _EVERY_GRID for r in roles)
        if not grids and not everywhere:
            return None  # not staff: these words mean something else to a resident
        waiting = await pending_residents(session, None if everywhere else grids)
        places = {r.openid: await household_place(session, r.household_id) for r in waiting}
    if command is None:
        if not waiting:
            return Outcome(T.NO_PENDING)
        return Outcome(T.pending_list([(short_id(r.openid), places[r.openid].label(), r.is_owner) for r in waiting]))
    verb, sid = command.group(1), command.group(2).upper()
    matches = [r for r in waiting if short_id(r.openid) == sid]
    if len(matches) != 1:  # none, or (all but impossible) two residents with one short id
        return Outcome(T.no_such_pending(sid))
    resident, label = matches[0], places[matches[0].openid].label()
    now = ctx.now()
    unit = Unit()
    still_pending = (Resident.openid == resident.openid) & (Resident.status == "pending") & (
        Resident.household_id == resident.household_id)
    async def routing_sees_it() -> None:
        await ctx.directory.changed(ctx.state)

    if verb == "确认":
        unit.updates.append(update(Resident).where(still_pending).values(status="bound", bound_at=now))
        notify(unit, resident.openid, T.resident_confirmed(label, resident.is_owner), now)
        return Outcome(T.worker_confirmed(label, sid), unit, [routing_sees_it])
    unit.updates.append(update(Resident).where(still_pending).values(status="unbound", household_id=None,
                                                                     is_owner=False))
    notify(unit, resident.openid, T.resident_rejected(label), now)
    return Outcome(T.worker_rejected(label, sid), unit, [routing_sees_it])


# ---- staff: invite codes ------------------------------------------------------------------------

async def _use_invite(msg: Inbound, ctx: Context, code: str, said_so: bool) -> Outcome | None:
    claim = await claim_invite(ctx.sessions, code, msg.openid, ctx.now())
    if claim.outcome in ("bound", "already"):
        await ctx.directory.changed(ctx.state)  # the new role gets the next new ticket's notices
        # The claim is committed already; the empty unit stores the reply, so a retry of this push gets it too.
        return Outcome(T.staff_bound(T.role_title(claim.role, claim.grid_name, claim.is_head)), Unit())
    if claim.outcome == "used":
        return Outcome(T.INVITE_USED)
    if claim.outcome == "expired":
        return Outcome(T.INVITE_EXPIRED)
    return Outcome(T.INVITE_UNKNOWN) if said_so else None  # maybe a household code: the caller looks


# ---- everyone: who am I -------------------------------------------------------------------------

async def who_am_i(msg: Inbound, ctx: Context) -> Outcome:
    async with ctx.sessions() as session:
        resident = await session.get(Resident, msg.openid)
        place = None
        if resident is not None and resident.household_id is not None:
            place = await household_place(session, resident.household_id)
        titles = []
        for role in await staff_roles(session, msg.openid):
            grid = await session.get(Grid, role.grid_id) if role.grid_id is not None else None
            titles.append(T.role_title(role.role, grid.name if grid else "", role.is_head))
    return Outcome(T.identity(place.label() if place else None, resident.status if resident else "",
                              bool(resident and resident.is_owner), titles))
