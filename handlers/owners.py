"""An owner binds to the register by sending their 业主码 (alone or after "业主码"), as staff send invite
codes: the first person to send it holds it; a new code from the register (re-import) frees it again."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.models import Owner
from storage.owners import flats_of, normal_code, owner_by_code


@dataclass(frozen=True, slots=True)
class OwnerClaim:
    outcome: str  # bound, already (this person holds it: a retry), taken (someone else does), unknown
    name: str = ""
    flats: tuple[str, ...] = ()  # "幸福里社区 3栋2单元501"


async def bind_owner(sessions: async_sessionmaker, openid: str, code: str, now: datetime) -> OwnerClaim:
    """Bind this person to the owner whose code this is, at most one person per code: a conditional UPDATE
    decides between two senders."""
    async with sessions() as session:
        async with session.begin():
            owner = await owner_by_code(session, code)
            if owner is None:
                return OwnerClaim("unknown")
            claimed = await session.execute(update(Owner).where(
                Owner.id == owner.id, Owner.code == normal_code(code), Owner.openid.is_(None))
                .values(openid=openid, bound_at=now))
        holder = (await session.execute(select(Owner.openid).where(Owner.id == owner.id))).scalar_one()
        flats = tuple(p.label() for p in await flats_of(session, [owner.id]))
    if claimed.rowcount == 1:
        return OwnerClaim("bound", owner.name, flats)
    return OwnerClaim("already" if holder == openid else "taken", owner.name, flats if holder == openid else ())
