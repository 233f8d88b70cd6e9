"""The owners' register (业主名册): `linli import owners FILE.csv`, and who holds which flat.

One line per owner and flat: `community,building,unit,room,owner_id,owner_name,owner_code`. Two lines for one
flat are its co-owners; one owner_id on several lines holds several flats (the developer's unsold flats are
lines of the developer's one owner_id). The flats must be in the community's map already (`linli import
households`). Like the households import, a file is all or nothing and every bad line is reported with its
number. Re-importing: an owner is updated by community + owner_id; each flat listed gets exactly the owners
on its lines (an owner missing from a listed flat's lines no longer holds it); flats not in the file keep
theirs. A changed owner_code unbinds the owner (the new code must be sent again). Nothing is deleted.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage import address as addr
from storage.community import ImportReport, Place, all_or_nothing, csv_records, household_place, read_text
from storage.models import Building, Community, Household, Owner, OwnerFlat

COLUMNS = ("community", "building", "unit", "room", "owner_id", "owner_name", "owner_code")
_LIMITS = {"community": 32, "building": 32, "unit": 16, "room": 16, "owner_id": 32, "owner_name": 100}
_OWNER_CODE = re.compile(r"^[A-Za-z0-9]{4,16}$")
_CODE_PREFIX = re.compile(r"^业主码\s*[:：]?\s*")
_CHUNK = 1000


@dataclass
class OwnersReport(ImportReport):
    """created: owner, holding; updated: owner; removed: holding (a flat's owner no longer on its lines)."""

    removed: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        if self.errors:
            return super().summary()
        return (f"导入成功：业主 新增 {self.created['owner']}、更新 {self.updated['owner']}；"
                f"产权 新增 {self.created['holding']}、取消 {self.removed['holding']}")


@dataclass(frozen=True, slots=True)
class _Line:
    line: int
    community: str
    building: str
    unit: str
    room: str
    register_id: str
    name: str
    code: str

    @property
    def flat(self) -> tuple[str, str, str, str]:
        return self.community, self.building, self.unit, self.room

    @property
    def owner(self) -> tuple[str, str]:
        return self.community, self.register_id


def normal_code(text: str) -> str:
    """An owner code as typed ("业主码 ab12cd", "AB12 CD"): upper case, no spaces."""
    return re.sub(r"\s+", "", _CODE_PREFIX.sub("", addr.normalise(text)))


def _parse(text: str, errors: list[str]) -> list[_Line]:
    lines = []
    for line, v in csv_records(text, COLUMNS, errors):
        problems = [f"{c} 不能为空" for c in COLUMNS if c != "unit" and not v.get(c)]
        problems += [f"{c} 太长（最多 {n} 个字）" for c, n in _LIMITS.items() if len(v.get(c, "")) > n]
        code = normal_code(v.get("owner_code", ""))
        if v.get("owner_code") and not _OWNER_CODE.match(code):
            problems.append(f"owner_code “{v['owner_code']}”应为 4 到 16 位字母或数字")
        if problems:
            errors += [f"第{line}行：{p}" for p in problems]
            continue
        lines.append(_Line(line, v["community"], v["building"], addr.canonical_unit(v.get("unit", "")),
                           addr.room_key(v["room"]), v["owner_id"], v["owner_name"], code))
    return lines


def _check_file(lines: list[_Line], errors: list[str]) -> None:
    """Within the file: an owner has one name and one code; a code one owner; an owner a flat once."""
    first: dict[tuple[str, str], _Line] = {}
    code_owner: dict[str, _Line] = {}
    holding: dict[tuple, int] = {}
    for ln in lines:
        seen = first.setdefault(ln.owner, ln)
        if (seen.name, seen.code) != (ln.name, ln.code):
            errors.append(f"第{ln.line}行：业主 {ln.register_id} 的姓名或业主码与第{seen.line}行不同")
        holder = code_owner.setdefault(ln.code, ln)
        if holder.owner != ln.owner:
            errors.append(f"第{ln.line}行：业主码 {ln.code} 在第{holder.line}行已给了业主 {holder.register_id}")
        if (before := holding.setdefault((ln.flat, ln.register_id), ln.line)) != ln.line:
            errors.append(f"第{ln.line}行：与第{before}行重复（同一业主、同一房屋）")


async def _flats(session: AsyncSession, lines: list[_Line], errors: list[str]) -> dict[tuple, int]:
    """flat key -> household id; a flat missing from the map is an error."""
    codes = sorted({ln.community for ln in lines})
    rows = await session.execute(
        select(Community.code, Building.name, Household.unit, Household.room, Household.id)
        .join(Building, Building.community_id == Community.id).join(Household, Household.building_id == Building.id)
        .where(Community.code.in_(codes)))
    flats = {(c, b, u, r): h for c, b, u, r, h in rows}
    for ln in lines:
        if ln.flat not in flats:
            errors.append(f"第{ln.line}行：社区 {ln.community} 没有 {addr.display(ln.building, ln.unit, ln.room)}"
                          "（请先导入户表）")
    return flats


async def _codes_taken(session: AsyncSession, lines: list[_Line], errors: list[str]) -> None:
    """An owner code held by another owner, or equal to a household code, would be ambiguous when sent."""
    codes = sorted({ln.code for ln in lines})
    holders: dict[str, tuple[str, str]] = {}
    households: set[str] = set()
    for i in range(0, len(codes), _CHUNK):
        chunk = codes[i:i + _CHUNK]
        rows = await session.execute(select(Owner.code, Community.code, Owner.register_id)
                                     .join(Community, Community.id == Owner.community_id).where(Owner.code.in_(chunk)))
        holders.update({code: (c, r) for code, c, r in rows})
        households |= set((await session.execute(select(func.upper(Household.code)).where(
            func.upper(Household.code).in_(chunk)))).scalars())
    for ln in lines:
        if (holder := holders.get(ln.code)) is not None and holder != ln.owner:
            errors.append(f"第{ln.line}行：业主码 {ln.code} 已经属于业主 {holder[1]}（社区 {holder[0]}）")
        if ln.code in households:
            errors.append(f"第{ln.line}行：业主码 {ln.code} 与一户的户号相同，请换一个")


async def import_owners(engine_or_sessions: AsyncEngine | async_sessionmaker, path: str | Path) -> OwnersReport:
    """Create or update the owners listed in an owners CSV and the flats they hold."""
    report = OwnersReport()
    lines = _parse(read_text(path), report.errors)
    _check_file(lines, report.errors)
    flats: dict[tuple, int] = {}

    async def check(session: AsyncSession) -> None:
        flats.update(await _flats(session, lines, report.errors))
        await _codes_taken(session, lines, report.errors)

    await all_or_nothing(engine_or_sessions, lines, report.errors, "文件里没有任何业主", check,
                         lambda session: _write(session, lines, flats, report))
    return report


async def _write(session: AsyncSession, lines: list[_Line], flats: dict[tuple, int], report: OwnersReport) -> None:
    community_ids = dict((await session.execute(select(Community.code, Community.id).where(
        Community.code.in_({ln.community for ln in lines})))).all())
    owners = {(c, o.register_id): o for o, c in (await session.execute(
        select(Owner, Community.code).join(Community, Community.id == Owner.community_id)
        .where(Owner.community_id.in_(community_ids.values())))).all()}
    for ln in {ln.owner: ln for ln in lines}.values():
        owner = owners.get(ln.owner)
        if owner is None:
            owner = owners[ln.owner] = Owner(community_id=community_ids[ln.community], register_id=ln.register_id,
                                             name=ln.name, code=ln.code)
            session.add(owner)
            report.created["owner"] += 1
        elif (owner.name, owner.code) != (ln.name, ln.code):
            if owner.code != ln.code:  # a new code: whoever held the old one must bind again
                owner.openid, owner.bound_at = None, None
            owner.name, owner.code = ln.name, ln.code
            report.updated["owner"] += 1
    await session.flush()
    wanted: dict[int, set[int]] = {}
    for ln in lines:
        wanted.setdefault(flats[ln.flat], set()).add(owners[ln.owner].id)
    household_ids = sorted(wanted)
    held: dict[int, set[int]] = {}
    for i in range(0, len(household_ids), _CHUNK):
        for owner_id, household_id in await session.execute(select(OwnerFlat.owner_id, OwnerFlat.household_id).where(
                OwnerFlat.household_id.in_(household_ids[i:i + _CHUNK]))):
            held.setdefault(household_id, set()).add(owner_id)
    for household_id, owner_ids in wanted.items():
        before = held.get(household_id, set())
        for gone in before - owner_ids:
            await session.execute(delete(OwnerFlat).where(OwnerFlat.household_id == household_id,
                                                          OwnerFlat.owner_id == gone))
            report.removed["holding"] += 1
        for owner_id in sorted(owner_ids - before):
            session.add(OwnerFlat(owner_id=owner_id, household_id=household_id))
            report.created["holding"] += 1


# ---- lookups -------------------------------------------------------------------------------------------------------

async def owner_by_code(session: AsyncSession, code: str) -> Owner | None:
    code = normal_code(code)
    if not _OWNER_CODE.match(code):
        return None
    return (await session.execute(select(Owner).where(Owner.code == code))).scalar_one_or_none()


async def flats_of(session: AsyncSession, owner_ids: list[int]) -> list[Place]:
    """The flats these owners hold, as residents read them."""
    rows = await session.execute(select(OwnerFlat.household_id).where(OwnerFlat.owner_id.in_(owner_ids))
                                 .distinct().order_by(OwnerFlat.household_id))
    return [p for h in rows.scalars() if (p := await household_place(session, h)) is not None]


async def bound_owners(session: AsyncSession, openid: str) -> list[Owner]:
    """The register's owners this person has bound (one person may hold several owners' codes)."""
    return list((await session.execute(select(Owner).where(Owner.openid == openid).order_by(Owner.id))).scalars())


async def holdings(session: AsyncSession, household_ids: list[int]) -> list[tuple[int, int]]:
    """(household_id, owner_id) register lines of these flats."""
    found: list[tuple[int, int]] = []
    for i in range(0, len(household_ids), _CHUNK):
        found += [tuple(r) for r in await session.execute(
            select(OwnerFlat.household_id, OwnerFlat.owner_id)
            .where(OwnerFlat.household_id.in_(household_ids[i:i + _CHUNK])))]
    return found
