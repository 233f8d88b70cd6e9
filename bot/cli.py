"""The `linli` command."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import traceback
from pathlib import Path

from bot.config import ConfigError, database_url, load_settings, migrated_database_url, say_if_embedded

MENU_FILE = Path(__file__).with_name("menu.json")


# argparse's own words (usage, errors), Chinese first like every message of `linli`; others stay as they are
_ARGPARSE_WORDS = {
    "usage: ": "用法 / usage: ",
    "positional arguments": "参数 / arguments",
    "options": "选项 / options",
    "show this help message and exit": "显示这段帮助 / show this help",
    "%(prog)s: error: %(message)s\n": "%(prog)s: 错误 / error: %(message)s\n",
    "the following arguments are required: %s": "缺少参数 / missing: %s",
    "unrecognized arguments: %s": "不认识的参数 / unrecognized: %s",
    "invalid choice: %(value)r (choose from %(choices)s)": "没有 %(value)r 这一项，可选 / choose from: %(choices)s",
    "argument %(argument_name)s: %(message)s": "参数 / argument %(argument_name)s: %(message)s",
    "expected one argument": "后面要跟一个值 / expected one argument",
    "invalid %(type)s value: %(value)r": "值不对 / invalid %(type)s value: %(value)r",
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        print(operator_message(exc), file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    argparse._ = lambda words: _ARGPARSE_WORDS.get(words, words)  # argparse looks its words up through _()
    parser = argparse.ArgumentParser(prog="linli", description="邻里 Linli：社区治理公众号服务 / community governance on WeChat",
                                     epilog="命令出错时只显示一行原因和办法；加 --debug 显示完整的出错位置 (traceback)。")
    parser.add_argument("--debug", action="store_true", help="出错时显示 traceback / show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="命令")

    serve = commands.add_parser("serve", help="运行公众号服务（webhook）/ run the webhook service")
    serve.add_argument("--host", default="0.0.0.0", help="监听地址 (默认 0.0.0.0)")
    serve.add_argument("--port", type=int, default=8080, help="端口 (默认 8080)")
    serve.add_argument("--workers", type=int, default=1,
                       help="共用端口的进程数 (SO_REUSEPORT)；多于 1 个需要 REDIS_URL / app processes sharing the port")
    serve.add_argument("--reuse-port", action="store_true", help="与其他进程共用端口 / share the port")
    serve.set_defaults(run=_serve)

    demo = commands.add_parser("demo", help="本机试用：演示社区、微信替身和终端聊天 / try Linli locally")
    demo.add_argument("--safe", action="store_true", help="用安全模式(AES)发消息 / send pushes in safe mode")
    demo.add_argument("--port", type=int, default=0, help="服务端口 (默认随便一个空闲端口)")
    demo.add_argument("--db", default="linli-demo.db", help="演示用的 SQLite 文件 (默认 linli-demo.db)")
    demo.add_argument("--fresh", action="store_true",
                      help="从空数据库开始：先删掉演示文件（及其 -wal/-shm）/ start from an empty demo database")
    demo.set_defaults(run=_demo)

    db = commands.add_parser("db", help="数据库维护 / database maintenance").add_subparsers(
        dest="db_command", required=True, metavar="命令")
    db.add_parser("upgrade", help="建表或升级到最新版本（多个进程同时运行也安全）/ apply the migrations").set_defaults(
        run=_db_upgrade)

    menu = commands.add_parser("menu", help="公众号菜单 / the official account's menu").add_subparsers(
        dest="menu_command", required=True, metavar="命令")
    push = menu.add_parser("push", help="把菜单装到公众号上 / install the menu on the official account")
    push.add_argument("--file", type=Path, default=MENU_FILE, help=f"菜单 JSON 文件 (默认 {MENU_FILE.name})")
    push.set_defaults(run=_menu_push)

    from bot import admin_cli, sender, wish_cli

    admin_cli.register(commands)
    wish_cli.register(commands)
    outbox = commands.add_parser("outbox", help="没能送达的通知 / notifications that could not be delivered")
    sender.register(outbox.add_subparsers(dest="outbox_command", required=True, metavar="命令"))

    from bot import bench
    from bot.web import cli as web_cli

    bench_commands = commands.add_parser("bench", help="性能测试 / benchmarks").add_subparsers(
        dest="bench_what", required=True, metavar="测试")
    bench.register(bench_commands)
    web_cli.register(commands)
    web_cli.register_bench(bench_commands)

    report = commands.add_parser("report", help="按网格、人员、委员会和类别的三率月报 / the three rates per month")
    report.add_argument("--month", required=True, type=_month, help="月份，例如 2026-11 (YYYY-MM)")
    report.add_argument("--xlsx", type=Path, help="同时写出当月的 Excel 报表 / also write the month's workbook")
    report.set_defaults(run=_report)

    nlp_parser = commands.add_parser("nlp", help="训练和评估关键词分类器 / train and evaluate the keyword classifier")
    from nlp import cli as nlp_cli

    nlp_cli.register(nlp_parser.add_subparsers(dest="nlp_command", required=True, metavar="命令"))
    from bot import vote_cli

    vote_cli.register(commands)  # after `import` and `bench`, which it adds to
    return parser


def operator_message(exc: BaseException) -> str:
    """The one line an operator sees for an error: what is wrong and what to do."""
    from storage.db import explain_error

    if isinstance(exc, ConfigError):
        return f"配置错误 / configuration error: {exc}"
    try:
        url = database_url()
    except ConfigError as bad:
        return f"配置错误 / configuration error: {bad}"
    if type(exc).__module__.startswith("redis"):
        return (f"Redis 错误 / Redis error: 用不了 REDIS_URL 指向的 Redis（{exc}）：请检查 Redis 是否在运行、"
                f"REDIS_URL 是否正确 / is Redis running, is REDIS_URL right?")
    if sentence := explain_error(exc, url):
        return f"数据库错误 / database error: {sentence}"
    return (f"出错了 / error: {type(exc).__name__}: {exc}（加 --debug 看详细位置 / add --debug for the traceback）")


def _month(text: str) -> str:
    from handlers.report import month_bounds

    try:
        month_bounds(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"月份应写成 YYYY-MM，例如 2026-11，而不是 {text!r}") from None
    return text


def _serve(args) -> int:
    from aiohttp import web

    from bot.app import create_app

    settings = load_settings()
    if args.workers > 1:
        if not settings.redis_url:
            raise ConfigError("REDIS_URL 未设置：多个进程 (--workers) 要在 Redis 里共享状态 / "
                              "REDIS_URL is not set: several worker processes must share their state in Redis")
        _require_migrated(settings.database_url)
        return _serve_workers(args)
    if not settings.embedded:  # the embedded default migrates itself on start
        _require_migrated(settings.database_url)
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


def _require_migrated(url: str) -> None:
    from storage.db import shown_url
    from storage.migrate import current_revision, head_revision

    current, head = current_revision(url), head_revision(url)
    if current != head:
        state = "还没有建表" if current is None else f"是旧版本 {current}（需要 {head}）"
        raise ConfigError(f"数据库 {shown_url(url)} {state}：请先运行 linli db upgrade / the database is not "
                          f"migrated ({current or 'empty'}, needs {head}): run linli db upgrade first")


def _db_upgrade(_args) -> int:
    from storage.db import shown_url
    from storage.migrate import current_revision, upgrade

    url = database_url()
    say_if_embedded(url)
    applied = upgrade(url)
    revision = current_revision(url)
    print(f"数据库已迁移到 {revision} / migrated to {revision}: {shown_url(url)}" if applied else
          f"数据库已是最新版本 {revision}，无需迁移 / already up to date: {shown_url(url)}")
    return 0


def _report(args) -> int:
    from handlers.context import utcnow
    from handlers.report import monthly, render
    from storage.db import create_engine, sessionmaker, shown_url

    url = migrated_database_url()

    async def build() -> str:
        engine = create_engine(url)
        try:
            now = utcnow()
            if args.xlsx:
                from bot.web.exports import month_workbook

                args.xlsx.write_bytes(await month_workbook(sessionmaker(engine), args.month, now))
            async with sessionmaker(engine)() as session:
                return render(args.month, await monthly(session, args.month, now))
        finally:
            await engine.dispose()

    table = asyncio.run(build())
    print(f"数据来源 / database: {shown_url(url)}")
    print(table)
    return 0


def _menu_push(args) -> int:
    from bot.wechat_api import WeChatAPI
    from storage.state import open_state

    settings = load_settings()
    if not (settings.wechat_appid and settings.wechat_secret):
        raise ConfigError("LINLI_WECHAT_APPID 和 LINLI_WECHAT_SECRET 未设置：装菜单要用公众号的 AppID 和 AppSecret / "
                          "LINLI_WECHAT_APPID and LINLI_WECHAT_SECRET are needed to push the menu")
    try:
        menu = json.loads(args.file.read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"读不了菜单文件 {args.file}：{exc.strerror} / cannot read the menu file", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"菜单文件 {args.file} 不是正确的 JSON：{exc} / the menu file is not valid JSON", file=sys.stderr)
        return 1

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
    print(f"菜单已装到公众号上（{args.file.name}）/ menu installed")
    return 0


def _demo(args) -> int:
    from bot.demo import remove_database, run_demo

    if args.fresh:
        removed = remove_database(args.db)
        print(f"已删除旧的演示数据：{'、'.join(removed)} / removed the old demo database" if removed
              else f"没有旧的演示数据 {args.db}，从空数据库开始 / no old demo database")
    return asyncio.run(run_demo(safe=args.safe, port=args.port, db_file=args.db))


if __name__ == "__main__":
    sys.exit(main())
