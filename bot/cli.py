"""The `linli` command."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from bot.config import ConfigError, load_settings, migrated_database_url

MENU_FILE = Path(__file__).with_name("menu.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="linli", description="邻里 Linli: community governance on WeChat")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the webhook service")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1,
                       help="app processes sharing the port (SO_REUSEPORT); more than 1 needs REDIS_URL")
    serve.add_argument("--reuse-port", action="store_true", help="share the port with other processes")
    serve.set_defaults(run=_serve)

    demo = commands.add_parser("demo", help="try Linli locally: demo community, WeChat stand-in and a chat")
    demo.add_argument("--safe", action="store_true", help="send pushes in safe mode (AES)")
    demo.add_argument("--port", type=int, default=0, help="webhook port (default: any free port)")
    demo.add_argument("--db", default="linli-demo.db", help="SQLite file of the demo (default: linli-demo.db)")
    demo.set_defaults(run=_demo)

    db = commands.add_parser("db", help="database maintenance").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply the database migrations").set_defaults(run=_db_upgrade)

    menu = commands.add_parser("menu", help="the official account's menu").add_subparsers(dest="menu_command",
                                                                                       required=True)
    push = menu.add_parser("push", help="install the menu definition on the official account")
    push.add_argument("--file", type=Path, default=MENU_FILE, help=f"menu JSON (default: {MENU_FILE.name})")
    push.set_defaults(run=_menu_push)

    from bot import admin_cli, sender

    admin_cli.register(commands)
    outbox = commands.add_parser("outbox", help="notifications that could not be delivered")
    sender.register(outbox.add_subparsers(dest="outbox_command", required=True))

    from bot import bench

    bench.register(commands.add_parser("bench", help="benchmarks").add_subparsers(dest="bench_what", required=True))

    report = commands.add_parser("report", help="the three rates per grid, worker, committee and category")
    report.add_argument("--month", required=True, help="YYYY-MM")
    report.set_defaults(run=_report)

    nlp_parser = commands.add_parser("nlp", help="train and evaluate the keyword classifier")
    from nlp import cli as nlp_cli

    nlp_cli.register(nlp_parser.add_subparsers(dest="nlp_command", required=True))
    from bot import vote_cli

    vote_cli.register(commands)  # after `import` and `bench`, which it adds to

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return args.run(args) or 0
    except ConfigError as exc:
        print(f"配置错误 / configuration error: {exc}", file=sys.stderr)
        return 2


def _serve(args) -> int:
    from aiohttp import web

    from bot.app import create_app

    settings = load_settings()
    if args.workers > 1:
        if not settings.redis_url:
            raise ConfigError("REDIS_URL is not set: several worker processes must share their state in Redis")
        return _serve_workers(args)
    app = create_app(settings)
    app.on_startup.append(_settle_gc)  # after the service has loaded (its start-up context runs first)
    web.run_app(app, host=args.host, port=args.port, access_log=None,
                reuse_port=args.reuse_port or None, print=lambda *_: None)
    return 0


async def _settle_gc(_app) -> None:
    """The dictionary, the tables and the libraries are loaded for good: keep the garbage collector's full
    passes from walking their millions of objects again and again under load (p99 93 -> 59 ms on
    PostgreSQL + Redis), and let it run every 20,000 allocations instead of 700 (+3-4 % throughput: a push
    allocates thousands of objects, nearly all freed by reference counting anyway)."""
    import gc

    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def _serve_workers(args) -> int:
    """N copies of `linli serve --reuse-port` on one port; the kernel spreads connections among them."""
    import signal
    import subprocess

    command = [sys.executable, "-m", "bot.cli", "serve", "--host", args.host, "--port", str(args.port),
               "--reuse-port"]
    workers = [subprocess.Popen(command) for _ in range(args.workers)]

    def stop(signum, _frame):
        for worker in workers:
            worker.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    codes = [worker.wait() for worker in workers]
    return max(codes, key=abs)


def _db_upgrade(_args) -> int:
    migrated_database_url()
    print("database is up to date")
    return 0


def _report(args) -> int:
    from handlers.context import utcnow
    from handlers.report import monthly, render, month_bounds
    from storage.db import create_engine, sessionmaker

    try:
        month_bounds(args.month)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    url = migrated_database_url()

    async def build() -> str:
        engine = create_engine(url)
        try:
            async with sessionmaker(engine)() as session:
                return render(args.month, await monthly(session, args.month, utcnow()))
        finally:
            await engine.dispose()

    print(asyncio.run(build()))
    return 0


def _menu_push(args) -> int:
    from bot.wechat_api import WeChatAPI
    from storage.state import open_state

    settings = load_settings()
    if not (settings.wechat_appid and settings.wechat_secret):
        raise ConfigError("LINLI_WECHAT_APPID and LINLI_WECHAT_SECRET are needed to push the menu")
    menu = json.loads(args.file.read_text(encoding="utf-8"))

    async def push() -> None:
        api = WeChatAPI(settings.wechat_api_base, settings.wechat_appid, settings.wechat_secret,
                        open_state(settings.redis_url))
        try:
            await api.create_menu(menu)
        finally:
            await api.close()

    from bot.wechat_api import WeChatError

    try:
        asyncio.run(push())
    except WeChatError as exc:
        print(f"微信接口拒绝了菜单 / WeChat refused the menu: {exc}", file=sys.stderr)
        return 1
    print("menu installed")
    return 0


def _demo(args) -> int:
    from bot.demo import run_demo

    return asyncio.run(run_demo(safe=args.safe, port=args.port, db_file=args.db))


if __name__ == "__main__":
    sys.exit(main())
