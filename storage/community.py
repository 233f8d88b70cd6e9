"""The community's map: communities, grids, buildings and households, imported from CSV and GeoJSON.

An import is all or nothing: every bad line is reported with its number and nothing is written unless
the whole file is good. Re-importing updates rows by their natural keys instead of adding duplicates:
community code; grid code within its community; building name within its community; household by
building + unit + room (its household code is unique too). The format is in docs/community.md.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage import address as addr
from storage.db import sessionmaker
from storage.decimals import parse_decimal
from storage.geo import geometry_errors, point_in_geometry
from storage.models import Building, Community, Grid, Household, Resident, Staff

DEMO_DIR = Path(__file__).with_name("demo")
DEMO_COMMUNITY = "xingfuli"  # code of 幸福里社区 in storage/demo/households.csv
REQUIRED_COLUMNS = ("community", "grid", "building", "room", "floor_area", "household_code")
OPTIONAL_COLUMNS = ("unit", "grid_name", "community_name")
_LIMITS = {"community": 32, "community_name": 100, "grid": 32, "grid_name": 100, "building": 32, "unit": 16,
           "room": 16, "household_code": 16}  # column widths in storage.models
# A household code binds a flat to whoever sends it: at least 8 letters or digits (40 bits when drawn from the
# 32 symbols `linli staff invite` uses), so that guessing, slowed by handlers/accounts.py's lockouts, is hopeless.
MIN_CODE_CHARS = 8
_AREA_UNITS = re.compile(r"\s*(?:㎡|m²|m2|平方米|平米)$", re.IGNORECASE)
_CHUNK = 1000  # keeps IN (...) lists under every backend's parameter limit


@dataclass
class ImportReport:
    created: Counter = field(default_factory=Counter)  # community, grid, building, household, polygon
    updated: Counter = field(default_factory=Counter)
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if self.errors:
            return "\n".join([f"导入失败，共 {len(self.errors)} 处错误，什么都没有写入：", *self.errors])
        names = {"community": "社区", "grid": "网格", "building": "楼栋", "household": "户", "polygon": "网格边界"}
        parts = [f"{names[k]} 新增 {self.created[k]}、更新 {self.updated[k]}"
                 for k in names if self.created[k] or self.updated[k]]
        return "导入成功：" + ("；".join(parts) or "没有变化") + (f"；未变 {self.unchanged} 行" if self.unchanged else "")


@dataclass(frozen=True, slots=True)
class Place:
    """A household as residents and staff read it."""

    household_id: int
    grid_id: int
    community: str  # the community's name
    address: str  # "3栋2单元501"

    def label(self) -> str:
        return f"{self.community} {self.address}"


def _sessions(engine_or_sessions: AsyncEngine | async_sessionmaker) -> async_sessionmaker:
    return sessionmaker(engine_or_sessions) if isinstance(engine_or_sessions, AsyncEngine) else engine_or_sessions


def read_text(path: str | Path) -> str:
    """UTF-8 (with or without Excel's BOM), or GB18030 as Excel on Chinese Windows saves CSV."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("gb18030")


# ---- households.csv ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    community: str
    community_name: str
    grid: str
    grid_name: str
    building: str
    unit: str  # canonical: "2单元" or ""
    room: str  # canonical: "501"
    area: Decimal  # exact, two places (votes count it)
    code: str

    @property
    def place_key(self) -> tuple[str, str, str, str]:
        return self.community, self.building, self.unit, self.room


def csv_records(text: str, required: tuple[str, ...], errors: list[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, stripped values) of each non-blank line of a CSV whose header names the required
    columns (in any order); a missing column is reported as an error of line 1."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in required if c not in header]
    if missing:
        errors.append(f"第1行：缺少列 {', '.join(missing)}（必需的列：{','.join(required)}）")
        return []
    reader.fieldnames = header
    records = []
    for record in reader:
        values = {k: (v or "").strip() for k, v in record.items() if isinstance(k, str)}
        if any(values.values()):  # blank lines, often at the end of a spreadsheet export, are skipped
            records.append((reader.line_num, values))
    return records


def sort_by_line(errors: list[str]) -> None:
    errors.sort(key=lambda e: int(re.match(r"第(\d+)行", e).group(1)))


def _parse_rows(text: str, errors: list[str]) -> list[_Row]:
    return [row for line, values in csv_records(text, REQUIRED_COLUMNS, errors)
            if (row := _parse_row(line, values, errors))]


def _parse_row(line: int, v: dict[str, str], errors: list[str]) -> _Row | None:
    problems = [f"{c} 不能为空" for c in REQUIRED_COLUMNS if not v.get(c)]
    problems += [f"{c} 太长（最多 {n} 个字）" for c, n in _LIMITS.items() if len(v.get(c, "")) > n]
    code = v.get("household_code", "")
    if code and sum(ch.isascii() and ch.isalnum() for ch in code) < MIN_CODE_CHARS:
        problems.append(f"户号 {code} 太短，容易被猜中：至少 {MIN_CODE_CHARS} 个字母或数字")
    area = Decimal(0)
    if v.get("floor_area"):
        try:
            area = parse_decimal(_AREA_UNITS.sub("", v["floor_area"]))
            if not 0 < area < 10000:
                problems.append(f"floor_area “{v['floor_area']}”应在 0 到 10000 平方米之间")
        except ValueError:
            problems.append(f"floor_area “{v['floor_area']}”不是数字（最多两位小数，如 89.5）")
    unit, room = addr.canonical_unit(v.get("unit", "")), addr.room_key(v.get("room", ""))
    if len(unit) > _LIMITS["unit"]:
        problems.append("unit 太长")
    if problems:
        errors += [f"第{line}行：{p}" for p in problems]
        return None
    grid_name = v.get("grid_name") or (f"{v['grid']}号网格" if v["grid"].isdigit() else v["grid"])
    return _Row(line, v["community"], v.get("community_name") or v["community"], v["grid"], grid_name,
                v["building"], unit, room, area, v["household_code"])


def _check_consistency(rows: list[_Row], errors: list[str]) -> None:
    """Within the file: no household twice, one grid per building, one name per grid and community."""
    first_code: dict[str, int] = {}
    first_place: dict[tuple, int] = {}
    building_grid: dict[tuple[str, str], tuple[str, int]] = {}
    grid_name: dict[tuple[str, str], tuple[str, int]] = {}
    community_name: dict[str, tuple[str, int]] = {}
    for r in rows:
        where = addr.display(r.building, r.unit, r.room)
        if (seen := first_code.setdefault(r.code, r.line)) != r.line:
            errors.append(f"第{r.line}行：户号 {r.code} 与第{seen}行重复")
        if (seen := first_place.setdefault(r.place_key, r.line)) != r.line:
            errors.append(f"第{r.line}行：{where} 与第{seen}行重复")
        grid, seen = building_grid.setdefault((r.community, r.building), (r.grid, r.line))
        if grid != r.grid:
            errors.append(f"第{r.line}行：{r.building} 在第{seen}行属于网格 {grid}，这里却是网格 {r.grid}")
        name, seen = grid_name.setdefault((r.community, r.grid), (r.grid_name, r.line))
        if name != r.grid_name:
            errors.append(f"第{r.line}行：网格 {r.grid} 的名称与第{seen}行不同（{name} / {r.grid_name}）")
        name, seen = community_name.setdefault(r.community, (r.community_name, r.line))
        if name != r.community_name:
            errors.append(f"第{r.line}行：社区 {r.community} 的名称与第{seen}行不同（{name} / {r.community_name}）")


async def _codes_taken(session: AsyncSession, rows: list[_Row], errors: list[str]) -> None:
    """A household code already held by another flat in the database would break its uniqueness."""
    codes = sorted({r.code for r in rows})
    holders: dict[str, tuple[str, str, str, str]] = {}
    for i in range(0, len(codes), _CHUNK):
        result = await session.execute(
            select(Household.code, Community.code, Building.name, Household.unit, Household.room)
            .join(Building, Household.building_id == Building.id)
            .join(Community, Building.community_id == Community.id)
            .where(Household.code.in_(codes[i:i + _CHUNK])))
        holders.update({code: (c, b, u, r) for code, c, b, u, r in result})
    for r in rows:
        holder = holders.get(r.code)
        if holder is not None and holder != r.place_key:
            errors.append(f"第{r.line}行：户号 {r.code} 已经属于 {holder[0]} {addr.display(*holder[1:])}")


async def all_or_nothing(engine_or_sessions: AsyncEngine | async_sessionmaker, rows: list, errors: list[str],
                         nothing: str, check, write) -> None:
    """One transaction: `await check(session)` against the database (it appends errors), then `await
    write(session)` only when no line has an error, so a bad file writes nothing; errors sorted by line."""
    if not rows and not errors:
        errors.append(f"第1行：{nothing}")
    async with _sessions(engine_or_sessions)() as session, session.begin():
        if rows:
            await check(session)
        if errors:
            sort_by_line(errors)
            return
        await write(session)


async def import_households(engine_or_sessions: AsyncEngine | async_sessionmaker, path: str | Path) -> ImportReport:
    """Create or update the communities, grids, buildings and households listed in a households CSV."""
    report = ImportReport()
    rows = _parse_rows(read_text(path), report.errors)
    _check_consistency(rows, report.errors)
    await all_or_nothing(engine_or_sessions, rows, report.errors, "文件里没有任何户",
                         lambda session: _codes_taken(session, rows, report.errors),
                         lambda session: _upsert(session, rows, report))
    return report


async def _upsert(session: AsyncSession, rows: list[_Row], report: ImportReport) -> None:
    changed_lines: set[int] = set()

    def touch(kind: str, created: bool, changed: bool, line: int) -> None:
        if created:
            report.created[kind] += 1
        elif changed:
            report.updated[kind] += 1
        if created or changed:
            changed_lines.add(line)

    codes = sorted({r.community for r in rows})
    communities = {c.code: c for c in (await session.execute(
        select(Community).where(Community.code.in_(codes)))).scalars()}
    for r in rows:
        c = communities.get(r.community)
        if c is None:
            c = communities[r.community] = Community(code=r.community, name=r.community_name)
            session.add(c)
            touch("community", True, False, r.line)
        elif c.name != r.community_name:
            c.name = r.community_name
            touch("community", False, True, r.line)
    await session.flush()
    ids = [c.id for c in communities.values()]

    grids = {(g.community_id, g.code): g for g in (await session.execute(
        select(Grid).where(Grid.community_id.in_(ids)))).scalars()}
    for r in rows:
        key = (communities[r.community].id, r.grid)
        g = grids.get(key)
        if g is None:
            g = grids[key] = Grid(community_id=key[0], code=r.grid, name=r.grid_name)
            session.add(g)
            touch("grid", True, False, r.line)
        elif g.name != r.grid_name:
            g.name = r.grid_name
            touch("grid", False, True, r.line)
    await session.flush()

    buildings = {(b.community_id, b.name): b for b in (await session.execute(
        select(Building).where(Building.community_id.in_(ids)))).scalars()}
    for r in rows:
        community_id = communities[r.community].id
        grid_id = grids[(community_id, r.grid)].id
        b = buildings.get((community_id, r.building))
        if b is None:
            b = buildings[(community_id, r.building)] = Building(community_id=community_id, grid_id=grid_id,
                                                                 name=r.building)
            session.add(b)
            touch("building", True, False, r.line)
        elif b.grid_id != grid_id:  # the building moved to another grid
            b.grid_id = grid_id
            touch("building", False, True, r.line)
    await session.flush()

    building_ids = [b.id for b in buildings.values()]
    households: dict[tuple[int, str, str], Household] = {}
    for i in range(0, len(building_ids), _CHUNK):
        households.update({(h.building_id, h.unit, h.room): h for h in (await session.execute(
            select(Household).where(Household.building_id.in_(building_ids[i:i + _CHUNK])))).scalars()})
    for r in rows:
        building_id = buildings[(communities[r.community].id, r.building)].id
        h = households.get((building_id, r.unit, r.room))
        if h is None:
            session.add(Household(building_id=building_id, unit=r.unit, room=r.room, floor_area=r.area, code=r.code))
            touch("household", True, False, r.line)
        elif h.floor_area != r.area or h.code != r.code:
            h.floor_area, h.code = r.area, r.code
            touch("household", False, True, r.line)
    report.unchanged = len(rows) - len(changed_lines)


# ---- grids.geojson ------------------------------------------------------------------------------

async def import_grid_polygons(engine_or_sessions: AsyncEngine | async_sessionmaker, path: str | Path,
                               community: str | None = None) -> ImportReport:
    """Store each feature's geometry as the outline of the grid named by its `grid` property.

    A feature may name its community (`community` property); otherwise `community` (a code) is used,
    or the grid code must be unique among all communities.
    """
    report = ImportReport()
    try:
        doc = json.loads(read_text(path))
    except ValueError as exc:
        report.errors.append(f"不是有效的 JSON：{exc}")
        return report
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        report.errors.append("应为 GeoJSON FeatureCollection（type 为 FeatureCollection，含 features 列表）")
        return report
    async with _sessions(engine_or_sessions)() as session, session.begin():
        by_code: dict[str, list[tuple[Grid, str]]] = {}
        for grid, community_code in (await session.execute(select(Grid, Community.code).join(Community))).all():
            by_code.setdefault(grid.code, []).append((grid, community_code))
        outlines: list[tuple[Grid, str]] = []
        for i, feature in enumerate(doc["features"], 1):
            where = f"第{i}个 feature"
            props = (feature.get("properties") or {}) if isinstance(feature, dict) else {}
            code = str(props.get("grid", "")).strip()
            wanted = str(props.get("community") or community or "").strip()
            if not code:
                report.errors.append(f"{where}：properties 里缺少 grid（网格编号）")
                continue
            matches = [g for g, c in by_code.get(code, []) if not wanted or c == wanted]
            if not matches:
                report.errors.append(f"{where}：没有编号为 {code} 的网格" + (f"（社区 {wanted}）" if wanted else "")
                                     + "，请先导入户表")
                continue
            if len(matches) > 1:
                report.errors.append(f"{where}：网格 {code} 在几个社区都有，请在 properties 里写 community")
                continue
            problems = geometry_errors(feature.get("geometry"))
            report.errors += [f"{where}（网格 {code}）：{p}" for p in problems]
            if not problems:
                polygon = json.dumps(feature["geometry"], ensure_ascii=False, separators=(",", ":"))
                outlines.append((matches[0], polygon))
        if report.errors:
            return report  # the transaction has written nothing
        for grid, polygon in outlines:
            if grid.polygon == polygon:
                report.unchanged += 1
                continue
            (report.created if grid.polygon is None else report.updated)["polygon"] += 1
            grid.polygon = polygon
    return report


@lru_cache(maxsize=4096)
def _geometry(polygon: str) -> tuple[dict, tuple[float, float, float, float]]:
    """Parsed outline and its bounding box, cached by the stored text."""
    geometry = json.loads(polygon)
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    rings = [ring for polygon in polygons for ring in polygon]
    lons = [pt[0] for ring in rings for pt in ring]
    lats = [pt[1] for ring in rings for pt in ring]
    return geometry, (min(lons), min(lats), max(lons), max(lats))


async def grid_at(session: AsyncSession, lat: float, lon: float, community_id: int | None = None) -> Grid | None:
    """The grid whose outline contains a location pin (WeChat sends Location_X = latitude, Y = longitude)."""
    query = select(Grid).where(Grid.polygon.is_not(None))
    if community_id is not None:
        query = query.where(Grid.community_id == community_id)
    for grid in (await session.execute(query.order_by(Grid.id))).scalars():
        geometry, (x0, y0, x1, y1) = _geometry(grid.polygon)
        if x0 <= lon <= x1 and y0 <= lat <= y1 and point_in_geometry(lon, lat, geometry):
            return grid
    return None


# ---- lookups for handlers -----------------------------------------------------------------------

async def community_of(session: AsyncSession, openid: str) -> Community | None:
    """The community a person writes from: their flat's (bound or waiting), else the only one there is."""
    found = (await session.execute(
        select(Community).join(Building, Building.community_id == Community.id)
        .join(Household, Household.building_id == Building.id)
        .join(Resident, Resident.household_id == Household.id).where(Resident.openid == openid))).scalar_one_or_none()
    if found is not None:
        return found
    only = (await session.execute(select(Community).limit(2))).scalars().all()
    return only[0] if len(only) == 1 else None


async def bound_homes(session: AsyncSession) -> list[tuple[str, int, int, str]]:
    """(openid, grid_id, household_id, "1号网格 3栋2单元501") of every resident whose binding is confirmed."""
    rows = await session.execute(
        select(Resident.openid, Building.grid_id, Household.id, Grid.name, Building.name, Household.unit,
               Household.room)
        .select_from(Resident).join(Household, Household.id == Resident.household_id)
        .join(Building, Building.id == Household.building_id).join(Grid, Grid.id == Building.grid_id)
        .where(Resident.status == "bound"))
    return [(o, g, h, f"{gname} {addr.display(b, u, r)}") for o, g, h, gname, b, u, r in rows]


def _place_query():
    return (select(Household, Building, Community)
            .join(Building, Household.building_id == Building.id)
            .join(Community, Building.community_id == Community.id))


def _place(h: Household, b: Building, c: Community) -> Place:
    return Place(h.id, b.grid_id, c.name, addr.display(b.name, h.unit, h.room))


async def household_place(session: AsyncSession, household_id: int) -> Place | None:
    row = (await session.execute(_place_query().where(Household.id == household_id))).first()
    return _place(*row) if row else None


async def place_by_code(session: AsyncSession, code: str) -> Place | None:
    """The household with this code (as typed: spaces and letter case don't matter)."""
    code = re.sub(r"\s+", "", addr.normalise(code))
    if not code or len(code) > 16:
        return None
    rows = (await session.execute(_place_query().where(Household.code.in_({code, code.lower()})))).all()
    return _place(*rows[0]) if rows else None


async def find_places(session: AsyncSession, text: str) -> list[Place]:
    """Every household a typed address could mean (several when the unit is left out, or in several communities)."""
    wanted = addr.parse_address(text)
    if wanted is None:
        return []
    # Narrow by room and the building's leading characters in SQL, match the spellings' keys in Python.
    rows = await session.execute(_place_query().where(
        Household.room == wanted.room, Building.name.like(f"{wanted.building}%")).order_by(Household.id))
    return [_place(h, b, c) for h, b, c in rows
            if addr.building_key(b.name) == wanted.building
            and (not wanted.unit or addr.unit_key(h.unit) == wanted.unit)]


async def find_household(session: AsyncSession, text: str) -> Household | None:
    """The one household a typed address such as "3栋2单元501" names; None if none or ambiguous."""
    places = await find_places(session, text)
    return await session.get(Household, places[0].household_id) if len(places) == 1 else None


# ---- the demo community -------------------------------------------------------------------------

DEMO_CONTACT = {"phone": "010-6512 3456", "office_hours": "周一至周五 8:30-17:30，周六上午 9:00-12:00",
                "office_address": "幸福里社区服务站（1栋旁）"}
DEMO_HOMES = {"张阿姨": "3栋2单元501", "李大爷": "1栋1单元301"}  # both in grid 1, both owners
DEMO_STAFF = {  # display name -> (role, grid code, head)
    "王网格员": ("grid_worker", "1", False),
    "陈主任": ("residents_committee", None, True),
    "刘党员": ("party_member", None, False),
    "赵党员": ("party_member", None, False),  # the demo's wishes (handlers.wishes.seed_demo_wishes) need two
}


async def seed_demo(engine: AsyncEngine, identities: dict[str, str], now: datetime | None = None) -> None:
    """Import 幸福里社区 (storage/demo) and bind the demo people, as codes and grid workers would. Idempotent."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    for report in (await import_households(engine, DEMO_DIR / "households.csv"),
                   await import_grid_polygons(engine, DEMO_DIR / "grids.geojson")):
        if not report.ok:
            raise ValueError("demo data is broken:\n" + report.summary())
    async with sessionmaker(engine)() as session, session.begin():
        community = (await session.execute(select(Community).where(Community.code == DEMO_COMMUNITY))).scalar_one()
        if not community.phone:  # what `linli community set` records for a real community
            community.phone, community.office_hours = DEMO_CONTACT["phone"], DEMO_CONTACT["office_hours"]
            community.office_address = DEMO_CONTACT["office_address"]
        for name, where in DEMO_HOMES.items():
            openid = identities.get(name)
            places = [p for p in await find_places(session, where) if p.community == community.name]
            if not openid or len(places) != 1:
                continue
            resident = await session.get(Resident, openid)
            if resident is None:
                session.add(Resident(openid=openid, household_id=places[0].household_id, is_owner=True, name=name,
                                     status="bound", bound_at=now, created_at=now))
        for name, (role, grid_code, head) in DEMO_STAFF.items():
            openid = identities.get(name)
            if not openid:
                continue
            grid_id = None
            if grid_code is not None:
                grid_id = (await session.execute(select(Grid.id).where(
                    Grid.community_id == community.id, Grid.code == grid_code))).scalar_one()
            exists = (await session.execute(select(Staff.id).where(
                Staff.openid == openid, Staff.role == role,
                Staff.grid_id == grid_id if grid_id is not None else Staff.grid_id.is_(None)))).first()
            if not exists:
                session.add(Staff(openid=openid, role=role, grid_id=grid_id, is_head=head, name=name, active=True,
                                  created_at=now))

