"""`linli bench console`: the console's ticket list (the page, over HTTP, and its storage function) and the
monthly report, each beside the same query in plain SQL run straight on the driver, measured in the same run.
Seed first: `linli console seed --tickets 1000000`. Targets: list p95 < 150 ms, report < 3 s (PostgreSQL)."""
from __future__ import annotations

import json
import time
from datetime import timedelta

from sqlalchemy import select

from storage import console as queries
from storage import reports
from storage.models import Staff

LIST_CASES = (
    ("newest, all", {}, ""),
    ("status=dispatched", {"status": "dispatched"}, "status=dispatched"),
    ("category+month", {"category": "noise", "month": "M"}, "category=noise&month=M"),
    ("overdue", {"overdue": True}, "overdue=1"),
    ("page 50", {"page": 50}, "page=50"),
    ("grid worker: open", {"status": "open", "scope": "worker"}, None),
)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _timed(fn, runs: int) -> list[float]:
    await fn()  # warm: plans, caches
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _literal_sql(engine, statement) -> str:
    return str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))


async def run_bench(url: str, runs: int) -> int:
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import SERVICE, create_app
    from bot.config import load_settings
    from handlers.console_login import make_login_link
    from bot.web.seed import BENCH_ADMIN
    from handlers.context import utcnow
    from handlers.report import monthly
    from storage.db import create_engine, sessionmaker

    engine = create_engine(url)
    now = utcnow()
    month = f"{now - timedelta(days=40):%Y-%m}"
    results = []
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        async with sessionmaker(engine)() as session:
            if not (await session.execute(select(Staff.id).where(Staff.openid == BENCH_ADMIN))).first():
                print("no bench data: run `linli console seed` first")
                return 1

            async def plain(sql: str):
                if engine.dialect.name == "postgresql":
                    return await raw.fetch(sql)
                return raw.execute(sql)  # aiosqlite's connection

            worker = list((await session.execute(select(Staff).where(Staff.openid == "bench-worker-1"))).scalars())
            for name, values, _ in LIST_CASES:
                values = {k: (reports.month_bounds(month) if v == "M" else v) for k, v in values.items()}
                scope = queries.ticket_scope(worker) if values.pop("scope", None) == "worker" else None
                f = queries.TicketFilter(**values)
                sqls = [_literal_sql(engine, queries.list_query(scope, f, now, 20)),
                        _literal_sql(engine, queries.count_query(scope, f, now))]

                async def ours():
                    await queries.ticket_page(session, scope, f, now, 20)

                async def bare():
                    for sql in sqls:
                        await plain(sql)

                results.append(("list " + name, await _timed(ours, runs), await _timed(bare, runs)))
            report_sqls = []
            start, end = reports.month_bounds(month)
            where = [queries.Ticket.dispatched_at >= start, queries.Ticket.dispatched_at < end]
            for key in reports.DIMENSIONS.values():
                report_sqls.append(_literal_sql(engine, select(key, *reports.count_columns(now)).where(*where).group_by(key)))
            report_sqls.append(_literal_sql(engine, select(*reports.count_columns(now)).where(*where)))

            async def report():
                await monthly(session, month, now)

            async def bare_report():
                for sql in report_sqls:
                    await plain(sql)

            results.append((f"report {month}", await _timed(report, max(3, runs // 8)),
                            await _timed(bare_report, max(3, runs // 8))))
    # the page itself, through the whole app: session check, scope, query, template
    import logging
    import os

    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    os.environ.setdefault("LINLI_WECHAT_TOKEN", "benchtoken")
    settings = load_settings()
    app = create_app(settings, background=False)
    async with TestClient(TestServer(app)) as client:
        link = await make_login_link(engine, BENCH_ADMIN, utcnow(), "")
        await client.get(link, allow_redirects=False)
        for name, _, query in LIST_CASES:
            if query is None:
                continue
            query = query.replace("M", month) if "month=M" in query else query

            async def page():
                resp = await client.get("/console/tickets?" + query)
                assert resp.status == 200, resp.status
                await resp.read()

            bare = next(r[2] for r in results if r[0] == "list " + name)
            results.append(("page " + name, await _timed(page, runs), bare))
        await app[SERVICE].engine.dispose()
    await engine.dispose()
    print(f"{'query':<28}{'p50 ms':>9}{'p95 ms':>9}{'plain p50':>11}{'plain p95':>11}{'ratio p95':>11}")
    summary = {}
    for name, ours, bare in results:
        p50, p95, b50, b95 = _p(ours, .5), _p(ours, .95), _p(bare, .5), _p(bare, .95)
        print(f"{name:<28}{p50:>9.1f}{p95:>9.1f}{b50:>11.1f}{b95:>11.1f}{p95 / b95 if b95 else 0:>11.2f}")
        summary[name] = {"p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "plain_p95_ms": round(b95, 1)}
    workbook_s = time.perf_counter()
    from bot.web.exports import month_workbook

    engine = create_engine(url)
    size = len(await month_workbook(sessionmaker(engine), month, now))
    workbook_s = time.perf_counter() - workbook_s
    await engine.dispose()
    print(f"workbook {month}: {size / 1e6:.1f} MB in {workbook_s:.1f} s")
    summary["workbook_s"] = round(workbook_s, 1)
    print(json.dumps(summary, ensure_ascii=False))
    return 0
