"""`linli console link|seed`, `linli open311 key`, `linli report --xlsx` on a fresh database; the report's
figures are those the former in-Python computation printed."""
from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import timedelta

import openpyxl
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import nlp
from bot.cli import main
from handlers import texts
from handlers.context import utcnow
from handlers.rates import Facts, rates
from handlers.report import render
from storage.db import create_engine
from storage.models import Grid, Staff, Ticket


@pytest.fixture
def fresh_db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("LINLI_PUBLIC_URL", "https://linli.example/sq")
    return url


async def former_monthly(url: str, month: str, now):
    """handlers/report.monthly as it was: every ticket of the month loaded and counted in Python."""
    from storage.reports import month_bounds

    start, end = month_bounds(month)
    engine = create_engine(url)
    async with AsyncSession(engine) as session:
        rows = (await session.execute(select(Ticket).where(Ticket.dispatched_at >= start, Ticket.dispatched_at < end))).scalars().all()
        grids = dict((await session.execute(select(Grid.id, Grid.name))).all())
        staff = {s.id: s.name or s.openid[:8] for s in (await session.execute(select(Staff))).scalars()}
    await engine.dispose()
    groups = {d: defaultdict(list) for d in ("grid", "worker", "committee", "category")}
    for t in rows:
        facts = Facts(t.dispatched_at, t.accepted_at, t.response_due, t.resolved_at, t.resolve_due, t.solved, t.rating)
        groups["grid"][grids.get(t.grid_id, "未绑定（值班）")].append(facts)
        groups["worker"][staff.get(t.assignee_id, "未签收")].append(facts)
        groups["committee"][texts.ROUTE_NAMES.get(t.route, t.route)].append(facts)
        groups["category"][nlp.CATEGORIES[t.category].name].append(facts)
    result = {d: {name: rates(items, now) for name, items in sorted(g.items())} for d, g in groups.items()}
    result["all"] = {"合计": rates([f for items in groups["grid"].values() for f in items], now)}
    return result


def test_seed_link_key_and_report_with_xlsx(fresh_db, tmp_path, capsys):
    assert main(["console", "seed", "--tickets", "3000", "--months", "3"]) == 0
    assert "seeded 3000 tickets" in capsys.readouterr().out
    month = f"{utcnow() - timedelta(days=35):%Y-%m}"
    book_path = tmp_path / "report.xlsx"
    assert main(["report", "--month", month, "--xlsx", str(book_path)]) == 0
    source, printed = capsys.readouterr().out.strip().split("\n", 1)
    assert source.startswith("数据来源")  # which database it read
    # the former code counted with the time it ran; seeded deadlines are far from now, so both agree
    assert printed == render(month, asyncio.run(former_monthly(fresh_db, month, utcnow())))
    book = openpyxl.load_workbook(book_path)
    assert book.sheetnames == ["汇总", "按网格", "按办理人", "按承办单位", "按类别", "工单"]
    total = list(book["汇总"].iter_rows(values_only=True))[2]
    assert total[0] == "合计" and f"{total[1]:>6}" in printed.splitlines()[4]
    assert len(list(book["工单"].iter_rows())) - 1 == total[1]
    assert {row[0] for row in list(book["按网格"].iter_rows(values_only=True))[2:]} <= {
        f"压测{i}号网格" for i in range(1, 11)}

    assert main(["console", "link", "--name", "压测管理员"]) == 0
    url = capsys.readouterr().out.strip().splitlines()[-1]
    assert url.startswith("https://linli.example/sq/console/login?token=")
    assert main(["console", "link", "--name", "没有这个人"]) == 1

    assert main(["open311", "key", "--name", "12345-platform"]) == 0
    key = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["api_key"]
    assert len(key) >= 24
    assert main(["open311", "key", "--name", "12345-platform"]) == 0  # a new key replaces the old one
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["api_key"] != key
