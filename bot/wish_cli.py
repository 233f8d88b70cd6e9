"""`linli wish review|show` and `linli party hours`: the reviewers' and the committee's commands for micro-wishes.

ID is the wish's number as residents read it (the id plus a check digit, e.g. 100017) or its bare id (10001);
a text that is one wish's number and another's id is refused as ambiguous. Each command runs the migrations
first, on DATABASE_URL (default sqlite:///linli.db). Whoever runs them acts as a reviewer ("cli" in the
timeline). See docs/wishes.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys

from bot.config import migrated_database_url
from handlers import wish_texts, wishes
from handlers.context import utcnow
from handlers.report import month_bounds
from handlers.wish_rules import KINDS, hours
from storage import wishes as repo
from storage.db import create_engine, sessionmaker
from storage.writer import Writer


def register(commands) -> None:
    """Add the top-level `wish` and `party` commands to an argparse subparsers object."""
    wish = commands.add_parser("wish", help="微心愿：审核、查看 / micro-wishes: review, show")
    wish_commands = wish.add_subparsers(dest="wish_command", required=True)
    review = wish_commands.add_parser("review", help="审核心愿：通过（上心愿墙）或不通过 / approve or reject a wish")
    review.add_argument("id", metavar="ID", help="the wish's number (with its check digit) or bare id")
    verdict = review.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--approve", action="store_true", help="put it on the wish wall")
    verdict.add_argument("--reject", action="store_true", help="turn it down (needs --reason)")
    review.add_argument("--reason", default="", help="why it is rejected: the resident reads it")
    review.add_argument("--kind", choices=sorted(KINDS), help="; ".join(f"{k} {v}" for k, v in KINDS.items()))
    review.add_argument("--text", help="the public text the wall shows (default: the resident's words)")
    review.set_defaults(run=run_review)
    show = wish_commands.add_parser("show", help="查看一个心愿：状态、认领人、时长、经过 / a wish: status, claimers, hours")
    show.add_argument("id", metavar="ID", help="the wish's number (with its check digit) or bare id")
    show.add_argument("--json", action="store_true", help="print one line of JSON")
    show.set_defaults(run=run_show)

    party = commands.add_parser("party", help="在职党员 / in-service Party members")
    party_commands = party.add_subparsers(dest="party_command", required=True)
    report = party_commands.add_parser("hours", help="每月每位党员和单位的服务时长与心愿数 / hours per member and unit")
    report.add_argument("--month", required=True, help="YYYY-MM (wishes closed in that month, UTC)")
    report.add_argument("--json", action="store_true", help="the last line is JSON")
    report.set_defaults(run=run_hours)


async def _with_session(url: str, work):
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session:
            return await work(engine, session)
    finally:
        await engine.dispose()


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def run_review(args: argparse.Namespace) -> int:
    if args.reject and not args.reason.strip():
        return _fail("--reject needs --reason TEXT (the resident reads it)")

    async def work(engine, session):
        try:
            result = await wishes.review(session, wishes.CLI_ACTOR, args.id, utcnow(), approve=args.approve,
                                         reason=args.reason, kind=args.kind, public_text=args.text)
        except repo.AmbiguousRef:
            return wishes.WishResult("ambiguous", f"{args.id} is one wish's number and another's id: use the number")
        await session.close()  # its reads are done; the writer commits on its own connection
        writer = Writer(engine)
        try:
            return await wishes.commit(writer, result)
        finally:
            await writer.stop()

    result = asyncio.run(_with_session(migrated_database_url(), work))
    if result.code not in ("approved", "rejected"):
        return _fail(f"{result.code}: {result.reply}")
    print(result.reply)
    return 0


def run_show(args: argparse.Namespace) -> int:
    async def work(_engine, session):
        try:
            return await wishes.wish_detail(session, args.id)
        except repo.AmbiguousRef:
            return "ambiguous"

    detail = asyncio.run(_with_session(migrated_database_url(), work))
    if detail is None:
        return _fail(f"no wish {args.id}")
    if detail == "ambiguous":
        return _fail(f"{args.id} is one wish's number and another's id: use the number")
    if args.json:
        print(json.dumps(detail, ensure_ascii=False))
        return 0
    print(f"编号 {detail['number']}（{wish_texts.kind_name(detail['kind'])}）{detail['status_name']}")
    print(f"内容：{detail['text']}")
    if detail["public_text"] != detail["text"]:
        print(f"公开内容：{detail['public_text']}")
    print(f"{detail['community']} {detail['building']}")
    if detail["claimed_by"]:
        print(("团队认领：" if detail["group"] else "认领：") + "、".join(detail["claimed_by"]))
    if detail["story"]:
        print(f"说明：{detail['story']}")
    print(f"已确认时长：{detail['hours']:g} 小时")
    for event in detail["events"]:
        name = wish_texts.EVENT_NAMES.get(event["action"], event["action"])
        print(f"  {event['at'][:16]} {name}" + (f"：{event['note']}" if event["note"] else ""))
    return 0


def quarter_bounds(month: str):
    start, _ = month_bounds(month)
    first = start.replace(month=(start.month - 1) // 3 * 3 + 1)
    end = first.replace(year=first.year + 1, month=1) if first.month == 10 else first.replace(month=first.month + 3)
    return first, end


def run_hours(args: argparse.Namespace) -> int:
    try:
        start, end = month_bounds(args.month)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    q_start, q_end = quarter_bounds(args.month)

    async def work(_engine, session):
        return await repo.hours_report(session, start, end, q_start, q_end)

    report = asyncio.run(_with_session(migrated_database_url(), work))
    print(f"{args.month} 在职党员服务时长（当月圆梦的心愿）")
    print("党员：")
    for m in report.members:
        print(f"  {m.name}  {m.unit or '-'}  {hours(m.minutes):g} 小时  {m.wishes} 个心愿")
    print("单位：")
    for u in report.units:
        print(f"  {u.unit or '-'}  {hours(u.minutes):g} 小时  {u.wishes} 个心愿")
    quarter = f"{q_start:%Y-%m}至{(q_end.replace(day=1) - q_start.resolution):%Y-%m}"
    print(f"本季度（{quarter}）还没有认领的党员：" + ("、".join(m.name for m in report.idle) or "没有"))
    if args.json:
        def row(m):
            return {"name": m.name, "unit": m.unit, "hours": hours(m.minutes), "wishes": m.wishes}

        print(json.dumps({"month": args.month, "members": [row(m) for m in report.members],
                          "units": [{"unit": u.unit, "hours": hours(u.minutes), "wishes": u.wishes}
                                    for u in report.units],
                          "idle_this_quarter": [{"name": m.name, "unit": m.unit} for m in report.idle]},
                         ensure_ascii=False))
    return 0
