"""The owners' register: import (co-owners, several flats, line-numbered errors, all or nothing, re-import),
exact areas on both databases, and binding by 业主码."""
from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from handlers.owners import bind_owner
from storage.community import import_households
from storage.db import sessionmaker
from storage.decimals import ExactDecimal, parse_decimal
from storage.models import Household, Owner, OwnerFlat
from storage.owners import import_owners

HOUSEHOLDS = """community,community_name,grid,building,unit,room,floor_area,household_code
c,测试社区,1,1栋,1,101,89.50,HHXY0101
c,测试社区,1,1栋,1,102,120.25,HHXY0102
c,测试社区,1,2栋,,201,60,HHXY0201
c,测试社区,1,2栋,,202,70.1,HHXY0202
"""
HEADER = "community,building,unit,room,owner_id,owner_name,owner_code\n"
OWNERS = HEADER + """c,1栋,1,101,P1,张阿姨,ZHANG01
c,1栋,1,101,P2,张叔叔,ZHANG02
c,1栋,1,102,P3,李大爷,LI0003
c,2栋,,201,P3,李大爷,LI0003
c,2栋,,202,DEV,幸福地产,DEV999
"""


@pytest.fixture(scope="session", autouse=True)
def _warm_nlp():
    """The register needs no classifier."""


def write(tmp_path: Path, text: str, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
async def community(engine, tmp_path):
    report = await import_households(engine, write(tmp_path, HOUSEHOLDS, "households.csv"))
    assert report.ok, report.errors
    return engine


async def holdings(engine) -> set[tuple[str, str]]:
    async with sessionmaker(engine)() as s:
        rows = await s.execute(select(Owner.register_id, Household.room).join(OwnerFlat, OwnerFlat.owner_id == Owner.id)
                               .join(Household, Household.id == OwnerFlat.household_id))
        return {tuple(r) for r in rows}


async def test_areas_are_exact_decimals_on_both_databases(community):
    async with sessionmaker(community)() as s:
        areas = dict((await s.execute(select(Household.room, Household.floor_area))).all())
    assert areas == {"101": Decimal("89.50"), "102": Decimal("120.25"), "201": Decimal("60.00"),
                     "202": Decimal("70.10")}
    assert all(isinstance(a, Decimal) for a in areas.values())
    assert sum(areas.values()) == Decimal("339.85")  # floats would give 339.84999…


def test_exact_decimal_refuses_what_it_would_have_to_round():
    exact = ExactDecimal(10, 2)
    assert exact.exact(70.1) == Decimal("70.10") and exact.exact("89.5") == Decimal("89.50")
    for bad in ("89.555", "NaN", "Infinity", "abc", 1e-9):
        with pytest.raises(ValueError):
            exact.exact(bad)
    assert parse_decimal("1,200.5") == Decimal("1200.50") and parse_decimal("８９") == Decimal(89)  # full-width
    for bad in ("-1", "1e3", "", "1.2.3", "1_000"):
        with pytest.raises(ValueError):
            parse_decimal(bad)


async def test_a_household_area_with_three_places_is_a_line_error(engine, tmp_path):
    report = await import_households(engine, write(tmp_path, HOUSEHOLDS.replace("89.50", "89.555")))
    assert not report.ok and report.errors == ["第2行：floor_area “89.555”不是数字（最多两位小数，如 89.5）"]


async def test_the_register_names_co_owners_owners_of_several_flats_and_the_developer(community, tmp_path):
    report = await import_owners(community, write(tmp_path, OWNERS))
    assert report.ok, report.errors
    assert (report.created["owner"], report.created["holding"]) == (4, 5)
    assert await holdings(community) == {("P1", "101"), ("P2", "101"), ("P3", "102"), ("P3", "201"),
                                         ("DEV", "202")}
    again = await import_owners(community, write(tmp_path, OWNERS))
    assert again.ok and not again.created and not again.updated and not again.removed


async def test_bad_lines_are_all_reported_and_nothing_is_written(community, tmp_path):
    bad = HEADER + (
        "c,1栋,1,101,P1,张阿姨,ZHANG01\n"  # 2: fine
        "c,1栋,1,101,P1,张阿姨,ZHANG01\n"  # 3: the same line again
        "c,1栋,1,102,P1,张阿姨,OTHER1\n"  # 4: P1 with another code
        "c,9栋,1,101,P9,王,WANG09\n"  # 5: no such flat
        "c,2栋,,201,P4,,WANG10\n"  # 6: no name
        "c,2栋,,202,P5,赵,ZHANG01\n"  # 7: P1's code given to P5
        "c,2栋,,202,P6,钱,HHXY0101\n"  # 8: a household's code
        "c,2栋,,202,P7,孙,a!\n"  # 9: not a code
    )
    report = await import_owners(community, write(tmp_path, bad))
    assert report.errors == [
        "第3行：与第2行重复（同一业主、同一房屋）",
        "第4行：业主 P1 的姓名或业主码与第2行不同",
        "第5行：社区 c 没有 9栋1单元101（请先导入户表）",
        "第6行：owner_name 不能为空",
        "第7行：业主码 ZHANG01 在第2行已给了业主 P1",
        "第8行：业主码 HHXY0101 与一户的户号相同，请换一个",
        "第9行：owner_code “a!”应为 4 到 16 位字母或数字",
    ]
    async with sessionmaker(community)() as s:
        assert (await s.execute(select(func.count()).select_from(Owner))).scalar_one() == 0
    assert "什么都没有写入" in report.summary()


async def test_a_missing_column_is_named(community, tmp_path):
    report = await import_owners(community, write(tmp_path, "community,building,room,owner_id\nc,1栋,101,P1\n"))
    assert report.errors[0].startswith("第1行：缺少列 unit, owner_name, owner_code")


async def test_reimport_gives_each_listed_flat_exactly_its_lines(community, tmp_path):
    await import_owners(community, write(tmp_path, OWNERS))
    sold = HEADER + "c,2栋,,202,P8,新业主,NEW008\nc,1栋,1,101,P1,张阿姨,ZHANG01\n"  # 202 sold; 101 now P1 alone
    report = await import_owners(community, write(tmp_path, sold))
    assert report.ok and report.removed["holding"] == 2 and report.created == {"owner": 1, "holding": 1}
    assert await holdings(community) == {("P1", "101"), ("P3", "102"), ("P3", "201"), ("P8", "202")}


async def test_binding_by_code_once_and_a_new_code_unbinds(community, tmp_path):
    from datetime import datetime

    await import_owners(community, write(tmp_path, OWNERS))
    sessions = sessionmaker(community)
    now = datetime(2026, 12, 1)
    claim = await bind_owner(sessions, "li-openid", "业主码 li0003", now)
    assert claim.outcome == "bound" and claim.name == "李大爷"
    assert claim.flats == ("测试社区 1栋1单元102", "测试社区 2栋201")
    assert (await bind_owner(sessions, "li-openid", "LI0003", now)).outcome == "already"
    taken = await bind_owner(sessions, "someone-else", "LI0003", now)
    assert taken.outcome == "taken" and taken.flats == ()  # a stranger learns nothing of the flats
    assert (await bind_owner(sessions, "x", "NOSUCH1", now)).outcome == "unknown"
    await import_owners(community, write(tmp_path, OWNERS.replace("LI0003", "LI0004")))
    async with sessions() as s:
        assert (await s.execute(select(Owner.openid).where(Owner.register_id == "P3"))).scalar_one() is None
    assert (await bind_owner(sessions, "someone-else", "LI0004", now)).outcome == "bound"


async def test_two_people_sending_one_code_at_once_one_wins(community, tmp_path):
    from datetime import datetime

    await import_owners(community, write(tmp_path, OWNERS))
    sessions = sessionmaker(community)
    claims = await asyncio.gather(*(bind_owner(sessions, f"person-{i}", "DEV999", datetime(2026, 12, 1))
                                    for i in range(8)))
    assert sorted(c.outcome for c in claims) == ["bound"] + ["taken"] * 7
