"""The community's map: CSV and GeoJSON import, addresses, location pins, the demo seed and the admin CLI."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from hypothesis import given, strategies as st
from sqlalchemy import func, select

from storage.accounts import ROLE_NAMES
from storage.address import Address, parse_address
from storage.community import (find_household, find_places, grid_at, import_grid_polygons, import_households,
                               seed_demo)
from tests.conftest import resident_place
from storage.db import create_engine, sessionmaker
from storage.geo import geometry_errors, point_in_geometry
from storage.models import Building, Community, Grid, Household, InviteCode, Resident, Staff

DATA = Path(__file__).with_name("data")
HOUSEHOLDS, GRIDS = DATA / "demo_households.csv", DATA / "demo_grids.geojson"
HEADER = "community,grid,building,unit,room,floor_area,household_code\n"


@pytest.fixture(scope="session", autouse=True)
def _warm_nlp():
    """The map needs no classifier: these tests don't load it (conftest's fixture of this name does)."""


async def count(engine, model) -> int:
    async with sessionmaker(engine)() as s:
        return (await s.execute(select(func.count()).select_from(model))).scalar_one()


def write(tmp_path: Path, text: str, name: str = "households.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


# ---- households.csv ----------------------------------------------------------------------------

async def test_import_creates_the_map(engine):
    report = await import_households(engine, HOUSEHOLDS)
    assert report.ok, report.errors
    assert dict(report.created) == {"community": 1, "grid": 2, "building": 4, "household": 10}
    assert not report.updated and "户 新增 10" in report.summary()
    assert [await count(engine, m) for m in (Community, Grid, Building, Household)] == [1, 2, 4, 10]
    async with sessionmaker(engine)() as s:
        h = (await s.execute(select(Household).where(Household.code == "T3X501KM"))).scalar_one()
        assert (h.unit, h.room) == ("2单元", "501")  # canonical spellings
        grid = (await s.execute(select(Grid).where(Grid.code == "g1"))).scalar_one()
        assert grid.name == "g1"


async def test_reimport_updates_instead_of_duplicating(engine, tmp_path):
    await import_households(engine, HOUSEHOLDS)
    changed = HOUSEHOLDS.read_text(encoding="utf-8").replace("test,g2,3栋,2,501,91.74", "test,g2,3栋,2,501,95.5")
    assert changed != HOUSEHOLDS.read_text(encoding="utf-8")
    report = await import_households(engine, write(tmp_path, changed))
    assert report.ok and dict(report.updated) == {"household": 1} and not report.created and report.unchanged == 9
    assert await count(engine, Household) == 10
    async with sessionmaker(engine)() as s:
        assert (await s.execute(select(Household.floor_area).where(Household.code == "T3X501KM"))).scalar_one() == 95.5


async def test_a_building_can_move_to_another_grid_and_a_grid_be_renamed(engine, tmp_path):
    await import_households(engine, write(tmp_path, HEADER + "c,g1,1栋,,101,80,A1B2C3D4\n"))
    report = await import_households(engine, write(tmp_path, "community,grid,grid_name,building,unit,room,floor_area,"
                                                            "household_code\nc,g2,东区,1栋,,101,80,A1B2C3D4\n"))
    assert report.ok and report.created["grid"] == 1 and report.updated["building"] == 1
    assert await count(engine, Building) == 1


async def test_bad_lines_are_all_reported_and_nothing_is_written(engine, tmp_path):
    bad = HEADER + (
        "c,g1,1栋,1,101,80,A1B2C3D4\n"  # line 2: fine
        "c,g1,1栋,1,102,abc,A2B2C3D4X\n"  # line 3: area not a number
        ",g1,1栋,1,103,80,A3B2C3D4X\n"  # line 4: no community
        "c,g1,1栋,1,104,80,A1B2C3D4\n"  # line 5: code repeats line 2
        "c,g1,1栋,1,101,80,A5B2C3D4X\n"  # line 6: address repeats line 2
        "c,g2,1栋,1,106,80,A6B2C3D4X\n"  # line 7: building in another grid than on line 2
        "c,g1,1栋,1,107,-5,A7B2C3D4X\n"  # line 8: area out of range
        "c,g1,1栋,1,108,90㎡,A8B2C3D4X\n"  # line 9: fine, the unit is understood
        "c,g1,1栋,1,109,90,A9B2C\n"  # line 10: a code short enough to guess
    )
    report = await import_households(engine, write(tmp_path, bad))
    assert not report.ok
    lines = [int(e.split("行")[0].removeprefix("第")) for e in report.errors]
    assert lines == [3, 4, 5, 6, 7, 8, 10]
    assert "太短" in report.errors[-1]
    assert "不是数字" in report.errors[0] and "community 不能为空" in report.errors[1]
    assert "与第2行重复" in report.errors[2] and "什么都没有写入" in report.summary()
    assert [await count(engine, m) for m in (Community, Grid, Building, Household)] == [0, 0, 0, 0]


async def test_missing_columns_and_codes_taken_by_another_flat(engine, tmp_path):
    report = await import_households(engine, write(tmp_path, "community,grid,building\nc,g1,1栋\n"))
    assert report.errors == [report.errors[0]] and report.errors[0].startswith("第1行：缺少列")
    await import_households(engine, HOUSEHOLDS)
    report = await import_households(engine, write(tmp_path, HEADER + "test,g1,9栋,,101,80,T1A101KM\n"))
    assert report.errors == ["第2行：户号 T1A101KM 已经属于 test 1栋1单元101"]
    assert await count(engine, Building) == 4


async def test_excel_exports_in_gbk_with_blank_lines_are_read(engine, tmp_path):
    path = write(tmp_path, HEADER + "c,g1,1栋,1,101,80.5,A1B2C3D4\n,,,,,,\n", encoding="gb18030")
    report = await import_households(engine, path)
    assert report.ok and report.created["household"] == 1


# ---- grid outlines and location pins -------------------------------------------------------------

async def test_polygons_find_the_grid_of_a_location_pin(engine):
    await import_households(engine, HOUSEHOLDS)
    report = await import_grid_polygons(engine, GRIDS)
    assert report.ok and report.created["polygon"] == 2
    assert (await import_grid_polygons(engine, GRIDS)).unchanged == 2  # re-import: nothing to change
    async with sessionmaker(engine)() as s:
        assert (await grid_at(s, 31.005, 121.005)).code == "g1"
        assert (await grid_at(s, 31.005, 121.015)).code == "g2"
        assert (await grid_at(s, 31.055, 121.055)).code == "g2"  # the MultiPolygon's second part
        assert await grid_at(s, 31.03, 121.03) is None
        assert await grid_at(s, 121.005, 31.005) is None  # latitude and longitude are not swapped


async def test_bad_geojson_is_refused_whole(engine, tmp_path):
    await import_households(engine, HOUSEHOLDS)
    doc = json.loads(GRIDS.read_text(encoding="utf-8"))
    doc["features"][0]["properties"]["grid"] = "nope"
    doc["features"][1]["geometry"] = {"type": "Point", "coordinates": [121, 31]}
    report = await import_grid_polygons(engine, write(tmp_path, json.dumps(doc), "grids.geojson"))
    assert len(report.errors) == 2 and "第1个" in report.errors[0] and "第2个" in report.errors[1]
    async with sessionmaker(engine)() as s:
        assert (await s.execute(select(Grid.polygon).where(Grid.polygon.is_not(None)))).first() is None
    assert not (await import_grid_polygons(engine, write(tmp_path, "[1, 2", "broken.geojson"))).ok


def square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


_coord = st.floats(min_value=-170, max_value=170, allow_nan=False)
_size = st.floats(min_value=1e-4, max_value=5)
_frac = st.floats(min_value=0.001, max_value=0.999)


@given(x0=_coord, y0=st.floats(min_value=-80, max_value=80), w=_size, h=_size, fx=_frac, fy=_frac)
def test_points_inside_a_rectangle_are_inside(x0, y0, w, h, fx, fy):
    polygon = {"type": "Polygon", "coordinates": [square(x0, y0, x0 + w, y0 + h)]}
    assert point_in_geometry(x0 + fx * w, y0 + fy * h, polygon)


@given(x0=_coord, y0=st.floats(min_value=-80, max_value=80), w=_size, h=_size, fx=_frac, fy=_frac,
       side=st.sampled_from(["left", "right", "below", "above"]), away=st.floats(min_value=0.01, max_value=3))
def test_points_outside_a_rectangle_are_outside(x0, y0, w, h, fx, fy, side, away):
    polygon = {"type": "Polygon", "coordinates": [square(x0, y0, x0 + w, y0 + h)]}
    x, y = x0 + fx * w, y0 + fy * h
    x, y = {"left": (x0 - away * w, y), "right": (x0 + w + away * w, y),
            "below": (x, y0 - away * h), "above": (x, y0 + h + away * h)}[side]
    assert not point_in_geometry(x, y, polygon)


def test_a_hole_is_outside_and_other_shapes_contain_nothing():
    donut = {"type": "Polygon", "coordinates": [square(0, 0, 10, 10), square(4, 4, 6, 6)]}
    assert point_in_geometry(2, 2, donut) and not point_in_geometry(5, 5, donut)
    assert not point_in_geometry(5, 5, {"type": "Point", "coordinates": [5, 5]})
    assert geometry_errors({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0.5]]]})  # not closed
    assert geometry_errors({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]})  # too few points
    assert geometry_errors({"type": "Polygon", "coordinates": [square(0, 0, 200, 1)]})  # beyond ±180
    assert not geometry_errors({"type": "MultiPolygon", "coordinates": [[square(0, 0, 1, 1)]]})


# ---- typed addresses ----------------------------------------------------------------------------

@pytest.mark.parametrize("typed, wanted", [
    ("3栋2单元501", Address("3", "2", "501")),
    ("3-2-501", Address("3", "2", "501")),
    ("3号楼2单元501室", Address("3", "2", "501")),
    ("３栋２单元５０１", Address("3", "2", "501")),
    ("三栋二单元501", Address("3", "2", "501")),
    ("幸福里社区3栋2单元501", Address("3", "2", "501")),
    ("3 2 501", Address("3", "2", "501")),
    ("3栋501", Address("3", "", "501")),
    ("A座1单元1201", Address("A", "1", "1201")),
    ("12幢3单元0302", Address("12", "3", "302")),
])
def test_typed_addresses_are_understood(typed, wanted):
    assert parse_address(typed) == wanted


@pytest.mark.parametrize("typed", ["你好", "3栋门口垃圾没人收", "501", "绑定", ""])
def test_other_text_is_no_address(typed):
    assert parse_address(typed) is None


async def test_find_household_by_typed_address(engine):
    await import_households(engine, HOUSEHOLDS)
    async with sessionmaker(engine)() as s:
        assert (await find_household(s, "3号楼2单元501室")).code == "T3X501KM"
        assert (await find_household(s, "3-2-501")).code == "T3X501KM"
        assert (await find_household(s, "2号楼1单元102")).code == "T2A102KM"
        assert (await find_household(s, "4栋201")).code == "T4Y201KM"  # a building without units
        assert await find_household(s, "1栋101") is None  # 1单元 or 2单元?
        assert sorted(p.address for p in await find_places(s, "1栋101")) == ["1栋1单元101", "1栋2单元101"]
        assert await find_household(s, "13栋2单元501") is None


# ---- demo seed ----------------------------------------------------------------------------------

async def test_demo_seed_binds_the_demo_people_once(engine):
    from bot.demo import IDENTITIES

    await seed_demo(engine, IDENTITIES)
    await seed_demo(engine, IDENTITIES)  # idempotent: `linli demo` may start twice on one file
    assert await count(engine, Household) >= 24 and await count(engine, Grid) == 2
    async with sessionmaker(engine)() as s:
        grid1 = (await s.execute(select(Grid.id).where(Grid.code == "1"))).scalar_one()
        zhang = await resident_place(s, IDENTITIES["张阿姨"])
        li = await resident_place(s, IDENTITIES["李大爷"])
        assert zhang[0] == grid1 and li[0] == grid1 and zhang[1] != li[1]
        assert (await s.get(Resident, IDENTITIES["张阿姨"])).is_owner
        staff = {(r.openid, r.role, r.grid_id, r.is_head) for r in (await s.execute(select(Staff))).scalars()}
        assert staff == {(IDENTITIES["王网格员"], "grid_worker", grid1, False),
                         (IDENTITIES["陈主任"], "residents_committee", None, True),
                         (IDENTITIES["刘党员"], "party_member", None, False),
                         (IDENTITIES["赵党员"], "party_member", None, False)}
        assert (await grid_at(s, 30.582, 114.302)).id == grid1


# ---- admin CLI ----------------------------------------------------------------------------------

def run_cli(*argv: str) -> int:
    from bot.admin_cli import register

    parser = argparse.ArgumentParser(prog="linli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


def test_cli_imports_invites_and_lists(database_url, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert run_cli("import", "households", str(HOUSEHOLDS), "--polygons", str(GRIDS)) == 0
    out = capsys.readouterr().out
    assert "户 新增 10" in out and "网格边界 新增 2" in out

    bad = write(tmp_path, HEADER + "c,g1,1栋,1,101,x,A1B2C3D4\n")
    assert run_cli("import", "households", str(bad)) == 1
    assert "第2行" in capsys.readouterr().out

    assert run_cli("staff", "invite", "--role", "grid_worker") == 1  # a grid worker needs a grid
    assert run_cli("staff", "invite", "--role", "grid_worker", "--grid", "nope") == 1
    capsys.readouterr()
    assert run_cli("staff", "invite", "--role", "grid_worker", "--grid", "g2", "--name", "王芳", "--hours", "24") == 0
    out = capsys.readouterr().out
    code = out.split("邀请码：")[1].split()[0]
    assert len(code) == 8 and not set(code) & set("0O1I") and "g2" in out
    assert run_cli("staff", "invite", "--role", "residents_committee", "--head") == 0
    capsys.readouterr()
    assert run_cli("staff", "list") == 0
    out = capsys.readouterr().out
    assert code in out and "王芳" in out and "负责人" in out

    with pytest.raises(SystemExit):
        run_cli("staff", "invite", "--role", "boss")  # a role is one of ROLE_NAMES
    assert set(ROLE_NAMES) >= {"grid_worker", "residents_committee", "owners_committee", "property", "mediation",
                               "duty_desk", "admin", "party_member"}

    async def stored():
        engine = create_engine(database_url)
        async with sessionmaker(engine)() as s:
            invite = await s.get(InviteCode, code)
        await engine.dispose()
        return invite

    import asyncio

    invite = asyncio.run(stored())
    assert invite.role == "grid_worker" and invite.name == "王芳" and invite.used_by is None
    assert round((invite.expires_at - invite.created_at).total_seconds()) == 24 * 3600
