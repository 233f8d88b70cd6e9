"""`linli import households ...` and `linli staff invite|list`: the community admin's commands.

Wire into the `linli` program with `register(commands)`; each command runs the migrations first, on
DATABASE_URL (default sqlite:///linli.db), so a fresh database works straight away.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from storage.accounts import ROLE_NAMES, create_invite
from storage.community import import_grid_polygons, import_households
from bot.config import migrated_database_url
from storage.db import create_engine, sessionmaker
from storage.models import Community, Grid, InviteCode, Staff

CHINA_HOURS = 8  # shown to admins in China time


def register(commands) -> None:
    """Add the top-level `import` and `staff` commands to an argparse subparsers object."""
    importer = commands.add_parser("import", help="导入社区地图：户表 CSV、网格边界 GeoJSON / import the community map")
    what = importer.add_subparsers(dest="import_what", required=True, metavar="内容")
    households = what.add_parser("households", help="从 CSV 导入社区、网格、楼栋和住户 / households from a CSV")
    households.add_argument("file", type=Path, help="户表 CSV（格式见 docs/community.md）/ households CSV")
    households.add_argument("--polygons", type=Path, help="网格边界 GeoJSON (FeatureCollection) / grid outlines")
    households.add_argument("--community", help="边界所属的社区编号（网格编号有重复时）/ community code of the polygons")
    households.set_defaults(run=run_import_households)

    staff = commands.add_parser("staff", help="工作人员：一次性邀请码、名单 / staff roles: invite codes, list")
    staff_commands = staff.add_subparsers(dest="staff_command", required=True, metavar="命令")
    invite = staff_commands.add_parser("invite", help="生成绑定工作身份的一次性邀请码 / a one-time code that binds a role")
    invite.add_argument("--role", required=True, choices=sorted(ROLE_NAMES),
                        help="身份 / role: " + "；".join(f"{k} {v}" for k, v in ROLE_NAMES.items()))
    invite.add_argument("--grid", help="网格编号（网格员必填）/ grid code (required for grid_worker)")
    invite.add_argument("--community", help="社区编号（有几个社区时）/ community code (when there are several)")
    invite.add_argument("--head", action="store_true", help="负责人：接收督办 / committee head: receives escalations")
    invite.add_argument("--name", default="", help="本人姓名，同事能看到 / the person's name, shown to colleagues")
    invite.add_argument("--hours", type=float, default=72, help="邀请码几小时后失效（默认 72）/ hours until it expires")
    invite.set_defaults(run=run_staff_invite)
    community = commands.add_parser("community", help="社区的联系方式（居民问“怎么联系居委会”时回答）/ contacts")
    community_commands = community.add_subparsers(dest="community_command", required=True, metavar="命令")
    setter = community_commands.add_parser("set", help="登记电话、办公时间、地址 / set phone, hours, address")
    setter.add_argument("code", help="社区编号（户表的 community 列）/ the community's code")
    setter.add_argument("--phone", help="电话，例如 010-6512 3456")
    setter.add_argument("--hours", help="办公时间，例如 周一至周五 8:30-17:30")
    setter.add_argument("--address", help="服务站地址")
    setter.set_defaults(run=run_community_set)
    community_commands.add_parser("list", help="各社区的联系方式 / every community's contacts").set_defaults(
        run=run_community_list)
    staff_commands.add_parser("list", help="在岗人员和未使用的邀请码 / active staff and unused codes").set_defaults(
        run=run_staff_list)


def run_community_set(args: argparse.Namespace) -> int:
    async def go(url: str) -> int:
        engine = create_engine(url)
        try:
            async with sessionmaker(engine)() as session, session.begin():
                c = (await session.execute(select(Community).where(Community.code == args.code))).scalar_one_or_none()
                if c is None:
                    print(f"没有社区 {args.code}，请先导入户表 / no community {args.code}", file=sys.stderr)
                    return 1
                for field, value in (("phone", args.phone), ("office_hours", args.hours),
                                     ("office_address", args.address)):
                    if value is not None:
                        setattr(c, field, value.strip())
                print(_contact_line(c))
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(go(migrated_database_url()))


def run_community_list(_args: argparse.Namespace) -> int:
    async def go(url: str) -> int:
        engine = create_engine(url)
        try:
            async with sessionmaker(engine)() as session:
                for c in (await session.execute(select(Community).order_by(Community.code))).scalars():
                    print(_contact_line(c))
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(go(migrated_database_url()))


def _contact_line(c: Community) -> str:
    return f"{c.code} {c.name}：电话 {c.phone or '-'}；办公时间 {c.office_hours or '-'}；地址 {c.office_address or '-'}"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def run_import_households(args: argparse.Namespace) -> int:
    for path in filter(None, (args.file, args.polygons)):
        if not path.is_file():
            print(f"找不到文件：{path} / file not found", file=sys.stderr)
            return 1
    return asyncio.run(_import(migrated_database_url(), args.file, args.polygons, args.community))


async def _import(url: str, csv_path: Path, polygons: Path | None, community: str | None) -> int:
    engine = create_engine(url)
    try:
        report = await import_households(engine, csv_path)
        print(f"{csv_path}：{report.summary()}")
        if not report.ok:
            return 1
        if polygons is not None:
            report = await import_grid_polygons(engine, polygons, community)
            print(f"{polygons}：{report.summary()}")
            if not report.ok:
                return 1
        return 0
    finally:
        await engine.dispose()


def run_staff_invite(args: argparse.Namespace) -> int:
    if args.role == "grid_worker" and not args.grid:
        print("网格员的邀请码需要 --grid 网格编号 / a grid worker's code needs --grid", file=sys.stderr)
        return 1
    if args.hours <= 0:
        print("--hours 应大于 0 / --hours must be more than 0", file=sys.stderr)
        return 1
    return asyncio.run(_invite(migrated_database_url(), args))


async def _invite(url: str, args: argparse.Namespace) -> int:
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            grid = None
            if args.grid:
                query = select(Grid, Community).join(Community).where(Grid.code == args.grid)
                if args.community:
                    query = query.where(Community.code == args.community)
                found = (await session.execute(query)).all()
                if len(found) != 1:
                    print(f"没有网格 {args.grid}，请先导入户表（linli import households）/ no such grid" if not found
                          else f"网格 {args.grid} 在几个社区都有，请加 --community 社区编号 / add --community",
                          file=sys.stderr)
                    return 1
                grid = found[0][0]
            invite = await create_invite(session, role=args.role, now=_now(), hours=args.hours,
                                         grid_id=grid.id if grid else None, is_head=args.head, name=args.name)
        who = ROLE_NAMES[args.role] + (f"（{grid.name}）" if grid else "") + ("，负责人" if args.head else "")
        print(f"邀请码：{invite.code}")
        print(f"身份：{who}{'，' + args.name if args.name else ''}")
        print(f"有效期到：北京时间 {_china(invite.expires_at)}（只能用一次）")
        print("请本人关注公众号后，把这个邀请码发给公众号，即可完成绑定。")
        return 0
    finally:
        await engine.dispose()


def run_staff_list(_args: argparse.Namespace) -> int:
    return asyncio.run(_list(migrated_database_url()))


async def _list(url: str) -> int:
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session:
            grids = {g.id: g.name for g in (await session.execute(select(Grid))).scalars()}
            staff = (await session.execute(select(Staff).where(Staff.active.is_(True))
                                           .order_by(Staff.role, Staff.grid_id, Staff.id))).scalars().all()
            invites = (await session.execute(select(InviteCode).where(
                InviteCode.used_by.is_(None), InviteCode.expires_at > _now()).order_by(InviteCode.created_at)
            )).scalars().all()
        print(f"在岗人员（{len(staff)}）：")
        for s in staff:
            print("  " + "  ".join(filter(None, (ROLE_NAMES.get(s.role, s.role), grids.get(s.grid_id, ""),
                                                  "负责人" if s.is_head else "", s.name or "-", s.openid))))
        print(f"未使用的邀请码（{len(invites)}）：")
        for i in invites:
            print("  " + "  ".join(filter(None, (i.code, ROLE_NAMES.get(i.role, i.role), grids.get(i.grid_id, ""),
                                                  "负责人" if i.is_head else "", i.name,
                                                  f"到 {_china(i.expires_at)}"))))
        return 0
    finally:
        await engine.dispose()


def _china(at: datetime) -> str:
    return (at + timedelta(hours=CHINA_HOURS)).strftime("%Y-%m-%d %H:%M")
