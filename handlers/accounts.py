"""Who is writing: residents bind to a household, staff bind a role with a one-time invite code.

A resident binds by a short dialogue ("accounts.bind": address, choose, owner): a household code the
community handed out binds at once; a typed address waits for the grid worker's "确认 XXXX". A staff role is
never self-declared: only an invite code made by `linli staff invite` gives one.

Codes can be guessed only slowly: every wrong household or invite code counts against the sender (5 a day)
and against the whole service (100 an hour); past either limit no code is tried until the window ends, and
the admins are told once. With codes of 8 characters from 32 symbols (40 bits), that leaves an attacker with
many accounts a chance of about 1 in 100 a year of hitting one of 10,000 households (docs/community.md).
"""
from __future__ import annotations

import re

from sqlalchemy import update

from handlers import account_texts as T
from handlers.notify import notify
from handlers.routing import Dialogue, Router, Turn
from handlers.types import Outcome
from storage.accounts import (claim_invite, grid_workers, invite_code_in, pending_residents, short_id, staff_of_roles,
                              staff_roles)
from storage.address import parse_address
from storage.community import Place, find_places, household_place, place_by_code
from storage.models import Grid, Resident
from storage.writer import Unit

__all__ = ["router", "staff_roles", "BIND_KEY"]

router = Router("accounts")
binding = router.dialogue(Dialogue("accounts.bind", exit_reply=T.EXITED))

BIND_KEY = "BIND"  # menu CLICK key
_BIND_WORDS = ("绑定", "绑定房屋", "绑定住址", "绑定地址", "绑定房子", "我要绑定", "住户绑定", "绑定户号", "换绑")
_WHO = ("我的身份", "我是谁", "我的信息", "身份")
_YES = {"1", "是", "是的", "对", "业主", "我是业主"}
_NO = {"2", "不是", "否", "不", "租户", "家属", "租房", "不是业主"}
_HOUSEHOLD_CODE_LIKE = re.compile(r"^(?=.*[A-Za-z])(?=.*[0-9])[A-Za-z0-9-]{4,16}$")
_PENDING_WORDS = ("待确认", "确认绑定", "绑定申请", "待确认绑定")
_MAX_TRIES = 3  # wrong answers before the dialogue gives up kindly
_NEW_MATTER_CHARS = 12  # a longer message that is no address is a new matter, not an answer
_EVERY_GRID = {"admin", "duty_desk"}  # may confirm bindings in any grid
# Wrong codes: per sender per day, and for the whole service per hour.
PERSON_FAILURES, PERSON_WINDOW_S = 5, 86400
SERVICE_FAILURES, SERVICE_WINDOW_S = 100, 3600
_FAIL, _FAIL_ALL, _TOLD = "codefail:", "codefail:*", "codefail-told:"


# ---- residents: the binding dialogue ------------------------------------------------------------

@router.click(BIND_KEY)
@router.command(*_BIND_WORDS)
async def start_binding(turn: Turn) -> Outcome:
    async with turn.ctx.sessions() as session:
        resident = await session.get(Resident, turn.openid)
        place = None
        if resident is not None and resident.household_id is not None and resident.status in ("bound", "pending"):
            place = await household_place(session, resident.household_id)
    turn.ask(binding.state("address"))
    if place is not None:
        return Outcome(T.already_bound(place.label(), resident.status == "pending"))
    return Outcome(T.ASK_ADDRESS)


@router.command(pattern=r"^绑定(?:房屋|住址|地址|户号)?\s*[:：]?\s*(\S.*)$")
async def bind_with(turn: Turn, m: re.Match) -> Outcome | None:
    turn.ask(binding.state("address"))
    return await _address_or_code(turn, m.group(1).strip())


@binding.step("address")
async def address_step(turn: Turn, _data: dict) -> Outcome | None:
    return await _address_or_code(turn, turn.words)


@binding.step("choose")
async def choose_step(turn: Turn, data: dict) -> Outcome | None:
    text, options = turn.words, data["options"]
    if text.isdigit() and 1 <= int(text) <= len(options):
        async with turn.ctx.sessions() as session:
            place = await household_place(session, options[int(text) - 1])
        return _ask_owner(turn, place, "address")
    if parse_address(text) is None:
        if not text.isdigit() and len(text) > _NEW_MATTER_CHARS:
            return None  # a new matter, not an answer
        return turn.retry(T.choose_household(data["labels"]), limit=_MAX_TRIES, give_up=T.GIVE_UP)
    return await _address_or_code(turn, text)


@binding.step("owner")
async def owner_step(turn: Turn, data: dict) -> Outcome | None:
    text = turn.words
    if text in _YES or text in _NO:
        return await _finish(turn, data, is_owner=text in _YES)
    if not text.isdigit() and len(text) > _NEW_MATTER_CHARS:
        return None
    return turn.retry(T.OWNER_AGAIN, limit=_MAX_TRIES, give_up=T.GIVE_UP)


async def _address_or_code(turn: Turn, text: str) -> Outcome | None:
    looks_like_code = bool(_HOUSEHOLD_CODE_LIKE.match(text))
    if looks_like_code and (locked := await _locked_out(turn)):
        return Outcome(locked)
    async with turn.ctx.sessions() as session:
        by_code = await place_by_code(session, text)
        places = [by_code] if by_code else await find_places(session, text)
    if len(places) == 1:
        return _ask_owner(turn, places[0], "code" if by_code else "address")
    if len(places) > 1:
        labels = [p.label() for p in places[:9]]
        turn.ask(binding.state("choose"), {"labels": labels, "options": [p.household_id for p in places[:9]]})
        return Outcome(T.choose_household(labels))
    if parse_address(text) is None:
        if invite := invite_code_in(text):  # shaped like a staff invite: it may be one
            return await _use_invite(turn, invite[0], T.CODE_NOT_FOUND)
        if len(text) > _NEW_MATTER_CHARS:  # "楼下垃圾没人收……" is a new matter, not an answer
            return None
        if looks_like_code:
            return await _wrong_code(turn, T.CODE_NOT_FOUND)
        return turn.retry(T.ADDRESS_NOT_UNDERSTOOD, limit=_MAX_TRIES, give_up=T.GIVE_UP)
    return turn.retry(T.address_not_found(text), limit=_MAX_TRIES, give_up=T.GIVE_UP)


def _ask_owner(turn: Turn, place: Place, via: str) -> Outcome:
    turn.ask(binding.state("owner"), {"household": place.household_id, "label": place.label(), "via": via})
    return Outcome(T.ask_owner(place.label()))


async def _finish(turn: Turn, data: dict, *, is_owner: bool) -> Outcome:
    """A household code binds now; a typed address waits for the grid worker, who is told."""
    ctx, now = turn.ctx, turn.ctx.now()
    by_code = data["via"] == "code"
    async with ctx.sessions() as session:
        resident = await session.get(Resident, turn.openid)
        place = await household_place(session, data["household"])
        confirmers = [] if by_code else (await grid_workers(session, place.grid_id)
                                         or await staff_of_roles(session, _EVERY_GRID))
    values = dict(household_id=place.household_id, is_owner=is_owner, status="bound" if by_code else "pending",
                  bound_at=now if by_code else None)
    unit = Unit()
    if resident is None:
        unit.add(Resident, openid=turn.openid, name="", phone="", created_at=now, **values)
    else:
        unit.updates.append(update(Resident).where(Resident.openid == turn.openid).values(**values))
    for openid in dict.fromkeys(s.openid for s in confirmers):
        notify(unit, openid, T.worker_notice(place.label(), is_owner, short_id(turn.openid)), now)

    async def routing_sees_it() -> None:
        await ctx.directory.changed(ctx.state)  # routing must see the new (or no longer confirmed) home

    turn.done()
    reply = T.bound(place.label(), is_owner) if by_code else T.pending(place.label())
    return Outcome(reply, unit, [routing_sees_it])


# ---- codes sent on their own: a household code, or a staff invite ---------------------------------

@router.text
async def code_alone(turn: Turn) -> Outcome | None:
    """A household code or an invite code sent without "绑定" first; an address alone starts binding."""
    text = turn.words
    invite = invite_code_in(text)
    looks_like_code = bool(invite or _HOUSEHOLD_CODE_LIKE.match(text))
    if looks_like_code and (locked := await _locked_out(turn)):
        return Outcome(locked)
    if invite and (answered := await _use_invite(turn, invite[0], T.INVITE_UNKNOWN if invite[1] else None)):
        return answered
    if _HOUSEHOLD_CODE_LIKE.match(text):
        async with turn.ctx.sessions() as session:
            if place := await place_by_code(session, text):
                return _ask_owner(turn, place, "code")
    if looks_like_code:
        return await _wrong_code(turn, T.INVITE_UNKNOWN if invite else T.CODE_NOT_FOUND)
    if parse_address(text) is not None and len(text) <= _NEW_MATTER_CHARS:  # "3栋2单元501" alone
        turn.ask(binding.state("address"))
        return await _address_or_code(turn, text)
    return None


async def _use_invite(turn: Turn, code: str, unknown: str | None) -> Outcome | None:
    """Bind the role the code gives; an unknown code is a wrong code answered with `unknown` (None: it may be
    something else, a household code say: the caller looks)."""
    ctx = turn.ctx
    claim = await claim_invite(ctx.sessions, code, turn.openid, ctx.now())
    if claim.outcome in ("bound", "already"):
        await ctx.directory.changed(ctx.state)  # the new role gets the next new ticket's notices
        turn.done()  # answered: an open binding question would only wait for nothing
        # The claim is committed already; the empty unit stores the reply, so a retry of this push gets it too.
        return Outcome(T.staff_bound(T.role_title(claim.role, claim.grid_name, claim.is_head)), Unit())
    if claim.outcome == "used":
        return Outcome(T.INVITE_USED)
    if claim.outcome == "expired":
        return Outcome(T.INVITE_EXPIRED)
    return await _wrong_code(turn, unknown) if unknown else None


async def _locked_out(turn: Turn) -> str | None:
    """The refusal while too many wrong codes came from this sender, or from everyone."""
    mine, everyone = await turn.ctx.state.get_many([_FAIL + turn.openid, _FAIL_ALL])
    if int(everyone or 0) >= SERVICE_FAILURES:
        return T.CODES_PAUSED
    if int(mine or 0) >= PERSON_FAILURES:
        return T.TOO_MANY_TRIES
    return None


async def _wrong_code(turn: Turn, reply: str) -> Outcome:
    """Count a wrong code; at a limit, tell the admins once per window (guessing looks like this)."""
    ctx, state, now = turn.ctx, turn.ctx.state, turn.ctx.now()
    mine = await state.hit(_FAIL + turn.openid, PERSON_WINDOW_S)
    everyone = await state.hit(_FAIL_ALL, SERVICE_WINDOW_S)
    unit = None
    told = []
    if mine == PERSON_FAILURES:
        told.append(T.admin_lockout_notice(short_id(turn.openid), PERSON_FAILURES))
    if everyone == SERVICE_FAILURES and await state.claim(_TOLD + "*", "1", SERVICE_WINDOW_S):
        told.append(T.admin_codes_paused_notice(SERVICE_FAILURES))
    if told:
        unit = Unit()
        async with ctx.sessions() as session:
            admins = await staff_of_roles(session, {"admin"})
        for admin in admins:
            for text in told:
                notify(unit, admin.openid, text, now)
    if mine >= PERSON_FAILURES:
        reply = T.TOO_MANY_TRIES
    return Outcome(reply, unit)


# ---- grid workers: confirming a typed address ---------------------------------------------------

@router.command(*_PENDING_WORDS)
async def pending_list(turn: Turn) -> Outcome | None:
    return await _confirm_binding(turn, None)


@router.command(pattern=r"^(确认|拒绝)\s*(?:绑定)?\s*([A-Za-z0-9]{4})$")
async def confirm_command(turn: Turn, m: re.Match) -> Outcome | None:
    return await _confirm_binding(turn, m)


async def _confirm_binding(turn: Turn, command: re.Match | None) -> Outcome | None:
    """'确认 K7Q2' / '拒绝 K7Q2' from a grid worker of that household's grid; '待确认' lists them."""
    ctx = turn.ctx
    async with ctx.sessions() as session:
        roles = await staff_roles(session, turn.openid)
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


# ---- everyone: who am I -------------------------------------------------------------------------

@router.command(*_WHO)
async def who_am_i(turn: Turn) -> Outcome:
    async with turn.ctx.sessions() as session:
        resident = await session.get(Resident, turn.openid)
        place = None
        if resident is not None and resident.household_id is not None:
            place = await household_place(session, resident.household_id)
        titles = []
        for role in await staff_roles(session, turn.openid):
            grid = await session.get(Grid, role.grid_id) if role.grid_id is not None else None
            titles.append(T.role_title(role.role, grid.name if grid else "", role.is_head))
    return Outcome(T.identity(place.label() if place else None, resident.status if resident else "",
                              bool(resident and resident.is_owner), titles))
