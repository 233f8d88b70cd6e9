"""Who is who: staff roles bound with one-time invite codes, and residents' bindings to households."""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Building, Grid, Household, InviteCode, Resident, Staff

ROLE_NAMES = {
    "grid_worker": "网格员",
    "residents_committee": "居委会",
    "owners_committee": "业委会",
    "property": "物业",
    "mediation": "调解委员会",
    "duty_desk": "社区值班",
    "admin": "社区管理员",
    "party_member": "在职党员",
}
COMMITTEES = {"residents_committee", "owners_committee", "property", "mediation"}
# Easy to read aloud and type on a phone: no 0/O, 1/I; both letters and digits, so no word looks like one.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
_CODE = re.compile(rf"^[{CODE_ALPHABET}]{{{CODE_LENGTH}}}$")
_INVITE_PREFIX = re.compile(r"^(?:邀请码|验证码|绑定码|code)\s*[:：]?\s*", re.IGNORECASE)
_SPACES_AND_DASHES = re.compile(r"[\s\-]")
_CODE_LIKE = re.compile(rf"[{CODE_ALPHABET}{CODE_ALPHABET.lower()}\s\-]+")


def new_code(length: int = CODE_LENGTH) -> str:
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))
        if any(c.isdigit() for c in code) and any(c.isalpha() for c in code):
            return code


def invite_code_in(text: str) -> tuple[str, bool] | None:
    """(code, said_so) when the text is an invite code, with or without a "邀请码" prefix.

    `said_so` is True when the sender wrote the prefix: then even an unknown code deserves an answer.
    Without it, only text shaped exactly like our codes (8 characters, letters and digits) counts.
    """
    stripped = text.strip()
    rest = _INVITE_PREFIX.sub("", stripped)
    said_so = rest != stripped
    if not said_so and not _CODE_LIKE.fullmatch(stripped):
        return None  # other characters than a code's, spaces and dashes (every message is asked this)
    candidate = _SPACES_AND_DASHES.sub("", rest).upper()
    if _CODE.match(candidate) and any(c.isdigit() for c in candidate) and any(c.isalpha() for c in candidate):
        return candidate, said_so
    if said_so and candidate:
        return candidate, True
    return None


def short_id(openid: str) -> str:
    """Four characters that name a resident in a grid worker's confirmation command ("确认 K7Q2")."""
    digest = hashlib.sha256(openid.encode()).digest()
    return "".join(CODE_ALPHABET[b % len(CODE_ALPHABET)] for b in digest[:4])


# ---- staff ---------------------------------------------------------------------------------------

async def create_invite(session: AsyncSession, *, role: str, now: datetime, hours: float = 72,
                        grid_id: int | None = None, is_head: bool = False, name: str = "") -> InviteCode:
    """Store a fresh one-time code (the caller commits)."""
    if role not in ROLE_NAMES:
        raise ValueError(f"unknown role {role!r}")
    if role == "grid_worker" and grid_id is None:
        raise ValueError("a grid worker's code needs a grid")
    code = new_code()
    while await session.get(InviteCode, code) is not None:  # 32^8 codes: a clash is all but impossible
        code = new_code()
    invite = InviteCode(code=code, role=role, grid_id=grid_id, is_head=is_head, name=name, created_at=now,
                        expires_at=now + timedelta(hours=hours))
    session.add(invite)
    return invite


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: str  # bound, already (this person used it before: a retry), used, expired, unknown
    role: str = ""
    grid_name: str = ""
    is_head: bool = False


async def claim_invite(sessions: async_sessionmaker, code: str, openid: str, now: datetime) -> Claim:
    """Use a code for this person, at most once in all: a conditional UPDATE decides who gets it.

    Two people sending the same code at once: the database lets one UPDATE change the row; the other
    finds `used_by` set and changes nothing (rowcount 0). The staff row commits with the claim.
    """
    async with sessions() as session:
        async with session.begin():
            # The UPDATE comes first so that the transaction starts as a writer (SQLite upgrades no lock).
            claimed = await session.execute(
                update(InviteCode)
                .where(InviteCode.code == code, InviteCode.used_by.is_(None), InviteCode.expires_at > now)
                .values(used_by=openid, used_at=now))
            invite = await session.get(InviteCode, code)
            if claimed.rowcount == 1:
                await _add_role(session, invite, openid, now)
        if invite is None:
            return Claim("unknown")
        grid_name = (await session.get(Grid, invite.grid_id)).name if invite.grid_id else ""
        if claimed.rowcount == 1:
            outcome = "bound"
        elif invite.used_by == openid:
            outcome = "already"  # WeChat retried the push, or the person sent the code twice
        elif invite.used_by:
            outcome = "used"
        else:
            outcome = "expired"
        return Claim(outcome, invite.role, grid_name, invite.is_head)


async def _add_role(session: AsyncSession, invite: InviteCode, openid: str, now: datetime) -> None:
    same = Staff.grid_id == invite.grid_id if invite.grid_id is not None else Staff.grid_id.is_(None)
    staff = (await session.execute(select(Staff).where(Staff.openid == openid, Staff.role == invite.role, same)
                                   )).scalars().first()
    if staff is None:
        session.add(Staff(openid=openid, role=invite.role, grid_id=invite.grid_id, is_head=invite.is_head,
                          name=invite.name, active=True, created_at=now))
    else:  # a role given back earlier, bound again
        staff.active, staff.is_head = True, staff.is_head or invite.is_head
        staff.name = invite.name or staff.name


async def staff_roles(session: AsyncSession, openid: str) -> list[Staff]:
    """The active roles of one person (a person may hold several)."""
    rows = await session.execute(select(Staff).where(Staff.openid == openid, Staff.active.is_(True)).order_by(Staff.id))
    return list(rows.scalars())


async def grid_workers(session: AsyncSession, grid_id: int) -> list[Staff]:
    rows = await session.execute(select(Staff).where(
        Staff.role == "grid_worker", Staff.grid_id == grid_id, Staff.active.is_(True)).order_by(Staff.id))
    return list(rows.scalars())


async def staff_of_roles(session: AsyncSession, roles: set[str]) -> list[Staff]:
    rows = await session.execute(select(Staff).where(Staff.role.in_(roles), Staff.active.is_(True)).order_by(Staff.id))
    return list(rows.scalars())


# ---- residents -----------------------------------------------------------------------------------

async def pending_residents(session: AsyncSession, grid_ids: set[int] | None) -> list[Resident]:
    """Residents waiting for a grid worker's confirmation, in these grids (None: in every grid)."""
    query = (select(Resident).join(Household, Resident.household_id == Household.id)
             .join(Building, Household.building_id == Building.id).where(Resident.status == "pending"))
    if grid_ids is not None:
        query = query.where(Building.grid_id.in_(grid_ids))
    return list((await session.execute(query.order_by(Resident.created_at))).scalars())
