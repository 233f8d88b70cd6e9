"""Shared set-up of the deliberation and vote tests: a small community with an owners' register."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from handlers.actors import Actor
from handlers.owners import bind_owner
from storage.community import import_households
from storage.db import sessionmaker
from storage.ids import IdAllocator
from storage.models import Household, Resident
from storage.owners import import_owners

NOW = datetime(2026, 12, 1, 2, 0)
COMMITTEE = Actor.cli("陈主任")
HOUSEHOLDS = """community,community_name,grid,building,unit,room,floor_area,household_code
c,测试社区,1,1栋,1,101,100.00,HHXY0101
c,测试社区,1,1栋,1,102,80.00,HHXY0102
c,测试社区,2,2栋,,201,60.00,HHXY0201
c,测试社区,2,2栋,,202,50.00,HHXY0202
c,测试社区,2,2栋,,203,50.00,HHXY0203
c,测试社区,2,2栋,,204,70.00,HHXY0204
"""
OWNERS = """community,building,unit,room,owner_id,owner_name,owner_code
c,1栋,1,101,P1,张阿姨,ZHANG1
c,1栋,1,101,P2,张叔叔,ZHANG2
c,1栋,1,102,P3,李大爷,LI0003
c,2栋,,201,P3,李大爷,LI0003
c,2栋,,202,DEV,幸福地产,DEV999
c,2栋,,203,DEV,幸福地产,DEV999
"""
ZHANG, ZHANG2, LI, WANG = "openid-zhang", "openid-zhang2", "openid-li", "openid-wang"


@pytest.fixture(scope="session", autouse=True)
def _warm_nlp():
    """Votes need no classifier."""


@pytest.fixture
async def place(engine, tmp_path: Path):
    """Two buildings, six flats: a co-owned flat, an owner of two flats, the developer's two unsold flats and
    a flat missing from the register; 张阿姨, 张叔叔 and 李大爷 bound their codes, 王 rents 2栋204."""
    (tmp_path / "h.csv").write_text(HOUSEHOLDS, encoding="utf-8")
    (tmp_path / "o.csv").write_text(OWNERS, encoding="utf-8")
    assert (await import_households(engine, tmp_path / "h.csv")).ok
    assert (await import_owners(engine, tmp_path / "o.csv")).ok
    sessions = sessionmaker(engine)
    for openid, code in ((ZHANG, "ZHANG1"), (ZHANG2, "ZHANG2"), (LI, "LI0003")):
        assert (await bind_owner(sessions, openid, code, NOW)).outcome == "bound"
    ids = IdAllocator(engine, "tickets", start=10000, block=1, max_block=1)
    await bind_resident((sessions, ids), WANG, "HHXY0204")
    yield sessions, ids
    await ids.settled()


async def key(place, prefix: str, code: str) -> str:
    """A voting unit's key: prefix and the id of the flat with this household code."""
    async with place[0]() as s:
        return prefix + str((await s.execute(select(Household.id).where(Household.code == code))).scalar_one())


async def bind_resident(place, openid: str, code: str) -> None:
    """A tenant or family member whose binding to the flat with this code is confirmed."""
    async with place[0]() as s, s.begin():
        household = (await s.execute(select(Household.id).where(Household.code == code))).scalar_one()
        s.add(Resident(openid=openid, household_id=household, status="bound", bound_at=NOW, created_at=NOW))
