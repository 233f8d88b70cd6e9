"""`linli report --month YYYY-MM`: the three rates and 按期办结率 per grid, worker, committee and category.

The database counts (storage.reports); this module names the groups and renders the table."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

import nlp
from handlers import texts
from handlers.rates import Rates, percent
from storage import reports
from storage.models import Grid, Staff
from storage.reports import month_bounds  # noqa: F401  (the CLI checks the month with it)

DIMENSIONS = ("grid", "worker", "committee", "category")
TITLES = {"all": "全部", "grid": "网格", "worker": "办理人", "committee": "承办单位", "category": "类别"}
NO_GRID, NOT_ACCEPTED = "未绑定（值班）", "未签收"


def category_name(code: str) -> str:
    category = nlp.CATEGORIES.get(code)
    return category.name if category else code


def route_name(route: str) -> str:
    return texts.ROUTE_NAMES.get(route, route)


async def group_names(session: AsyncSession) -> dict[str, dict]:
    """dimension -> group key -> the name the report shows."""
    grids = dict((await session.execute(select(Grid.id, Grid.name))).all())
    staff = {i: name or openid[:8] for i, name, openid in await session.execute(select(Staff.id, Staff.name, Staff.openid))}
    return {"grid": {None: NO_GRID, **grids}, "worker": {None: NOT_ACCEPTED, **staff}}


def _named(dimension: str, key, names: dict[str, dict]) -> str:
    if dimension in names:
        return names[dimension].get(key, str(key))
    return route_name(key) if dimension == "committee" else category_name(key)


def _add(a: Rates | None, counts: tuple) -> Rates:
    return Rates(*counts) if a is None else Rates(*(x + y for x, y in zip(
        (a.dispatched, a.responded, a.rated, a.solved, a.satisfied, a.due, a.on_time), counts)))


async def monthly(session: AsyncSession, month: str, now: datetime,
                  scope: ColumnElement[bool] | None = None) -> dict[str, dict[str, Rates]]:
    """dimension -> group name -> rates, for tickets dispatched in the month (UTC months), within `scope` (a
    condition on tickets, say a console viewer's; None: all). Groups with the same name are one line."""
    start, end = month_bounds(month)
    counts = await reports.month_counts(session, start, end, now, scope)
    names = await group_names(session)
    result: dict[str, dict[str, Rates]] = {}
    for dimension in DIMENSIONS:
        merged: dict[str, Rates] = {}
        for key, c in counts[dimension].items():
            name = _named(dimension, key, names)
            merged[name] = _add(merged.get(name), c)
        result[dimension] = dict(sorted(merged.items()))
    result["all"] = {"合计": Rates(*counts["all"][None])}
    return result


def render(month: str, table: dict[str, dict[str, Rates]]) -> str:
    lines = [f"邻里 {month} 办理情况"]
    for dimension in ("all", *DIMENSIONS):
        lines.append("")
        lines.append(f"按{TITLES[dimension]}" if dimension != "all" else "全部")
        # numbers first, names last: Chinese names are two columns wide and would break the alignment
        lines.append("  派单   响应率   解决率   满意率  按期办结率  名称")
        for name, r in table[dimension].items():
            lines.append(f"{r.dispatched:>6}{percent(r.response_rate):>9}{percent(r.resolution_rate):>9}"
                         f"{percent(r.satisfaction_rate):>9}{percent(r.on_time_rate):>11}  {name}")
    return "\n".join(lines)
