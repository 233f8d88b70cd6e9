"""`linli console link --name NAME`, `linli console seed --tickets N`, `linli open311 key --name CLIENT`,
`linli bench console`. Wire in with register(commands) and register_bench(bench_subparsers)."""
from __future__ import annotations

import asyncio
import json
import sys

from bot.config import migrated_database_url


def register(commands) -> None:
    console = commands.add_parser("console", help="网页后台：登录链接、测试数据 / the web console: login links, data")
    sub = console.add_subparsers(dest="console_command", required=True)
    link = sub.add_parser("link", help="生成一次性后台登录链接（10分钟内有效，只能用一次）/ a one-time login link")
    link.add_argument("--name", required=True, help="the staff member's name (as on their invite code)")
    link.set_defaults(run=_link)
    seed = sub.add_parser("seed", help="造 N 条测试工单（供 linli bench console 用）/ synthetic tickets for the benchmark")
    seed.add_argument("--tickets", type=int, default=1_000_000)
    seed.add_argument("--months", type=int, default=12)
    seed.set_defaults(run=_seed)
    open311 = commands.add_parser("open311", help="Open311 GeoReport v2 接口 / the Open311 API")
    key = open311.add_subparsers(dest="open311_command", required=True).add_parser(
        "key", help="为接入方生成（或更换）API 密钥，最后一行打印 {\"api_key\": …} / an API key")
    key.add_argument("--name", required=True, help="the client's name, e.g. 12345-platform")
    key.set_defaults(run=_key)


def register_bench(bench_commands) -> None:
    bench = bench_commands.add_parser("console", help="后台工单列表和月报的速度，对比直接 SQL / console queries against plain SQL")
    bench.add_argument("--runs", type=int, default=40, help="timed runs per query (default 40)")
    bench.set_defaults(run=_bench)


def _with_engine(job):
    from storage.db import create_engine

    url = migrated_database_url()

    async def run():
        engine = create_engine(url)
        try:
            return await job(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _link(args) -> int:
    from handlers.console_login import NoConsoleRole, make_login_link, staff_openids_named
    from bot.web.settings import load_web_settings
    from handlers.context import utcnow
    from storage.db import sessionmaker

    public_url = load_web_settings().public_url

    async def job(engine):
        async with sessionmaker(engine)() as session:
            people = await staff_openids_named(session, args.name)
        if len(people) != 1:
            return None, len(people)
        try:
            return await make_login_link(engine, people[0], utcnow(), public_url), 1
        except NoConsoleRole:
            return None, -1

    url, found = _with_engine(job)
    if url is None:
        print({0: f"没有在岗人员叫 {args.name}", -1: f"{args.name} 没有可以进后台的身份"}.get(
            found, f"有 {found} 个人叫 {args.name}，请先在 `linli staff list` 里区分"), file=sys.stderr)
        return 1
    print("登录链接（10 分钟内有效，只能用一次）：")
    print(url)
    return 0


def _key(args) -> int:
    from bot.web.open311 import create_key
    from handlers.context import utcnow
    from storage.db import sessionmaker

    async def job(engine):
        async with sessionmaker(engine)() as session, session.begin():
            return await create_key(session, args.name, utcnow())

    key = _with_engine(job)
    print(f"Open311 客户端 {args.name} 的新密钥（只显示这一次；旧密钥已失效）：")
    print(json.dumps({"api_key": key}))
    return 0


def _seed(args) -> int:
    from bot.web.seed import seed_tickets
    from handlers.context import utcnow

    if args.tickets <= 0 or args.months <= 0:
        print("--tickets and --months must be positive", file=sys.stderr)
        return 2
    done = _with_engine(lambda engine: seed_tickets(engine, args.tickets, args.months, utcnow(), progress=print))
    print(f"seeded {done} tickets")
    return 0


def _bench(args) -> int:
    from bot.web.bench import run_bench

    return asyncio.run(run_bench(migrated_database_url(), args.runs))
