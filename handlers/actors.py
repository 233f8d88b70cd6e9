"""Who acts in deliberation and votes, and in which role of handlers.deliberation_rules."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.accounts import staff_roles
from storage.models import BuildingCaptain

COMMITTEE_ROLES = frozenset({"residents_committee", "owners_committee", "admin"})  # run deliberation and votes


@dataclass(frozen=True)
class Actor:
    who: str  # an openid, or "cli:<name>" for the command line
    name: str = ""
    committee: bool = False  # 居委会, 业委会 (and the 议事会 they convene) and admins
    grid_ids: frozenset[int] = frozenset()  # grid worker of these grids
    buildings: frozenset[int] = frozenset()  # 楼栋长 of these buildings

    @classmethod
    def cli(cls, name: str = "") -> Actor:
        """The command line runs with the committee's powers (whoever can run it can reach the database)."""
        return cls(f"cli:{name or 'admin'}", name or "社区管理员", committee=True)

    @property
    def label(self) -> str:
        return self.name or self.who

    def proposal_role(self, proposer: str | None) -> str:
        if self.committee:
            return "committee"
        return "proposer" if proposer is not None and self.who == proposer else "resident"


async def actor_for(session: AsyncSession, openid: str) -> Actor:
    roles = await staff_roles(session, openid)
    captain_of = (await session.execute(select(BuildingCaptain.building_id).where(
        BuildingCaptain.openid == openid))).scalars()
    names = [r.name for r in roles if r.name]
    return Actor(openid, names[0] if names else "", committee=any(r.role in COMMITTEE_ROLES for r in roles),
                 grid_ids=frozenset(r.grid_id for r in roles if r.role == "grid_worker" and r.grid_id is not None),
                 buildings=frozenset(captain_of))
