"""`linli report --month YYYY-MM`: the three rates and 按期办结率 per grid, worker, committee and category."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

import nlp
from handlers import texts
from handlers.rates import Facts, Rates, percent, rates
from storage.models import Grid, Staff, Ticket

DIMENSIONS = ("grid", "worker", "committee", "category")
_TITLES = {"grid": "网格", "worker": "办理人", "committee": "承办单位", "category": "类别"}


def month_bounds(month: str) -> tuple[datetime, datetime]:
    try:
        start = datetime.strptime(month, "%Y-%m")
    except ValueError:
        raise ValueError(f"month must look like 2026-11, not {month!r}") from None
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


async def monthly(session: AsyncSession, month: str, now: datetime) -> dict[str, dict[str, Rates]]:
    """dimension -> group name -> rates, for tickets dispatched in the month (China time is ignored: UTC)."""
    start, end = month_bounds(month)
    rows = (await session.execute(select(Ticket).where(
        Ticket.dispatched_at >= start, Ticket.dispatched_at < end))).scalars().all()
    grids = dict((await session.execute(select(Grid.id, Grid.name))).all())
    staff = {s.id: s.name or s.openid[:8] for s in (await session.execute(select(Staff))).scalars()}
    groups: dict[str, dict[str, list[Facts]]] = {d: defaultdict(list) for d in DIMENSIONS}
    for t in rows:
        facts = Facts(t.dispatched_at, t.accepted_at, t.response_due, t.resolved_at, t.resolve_due, t.solved,
                      t.rating)
        groups["grid"][grids.get(t.grid_id, "未绑定（值班）")].append(facts)
        groups["worker"][staff.get(t.assignee_id, "未签收")].append(facts)
        groups["committee"][texts.ROUTE_NAMES.get(t.route, t.route)].append(facts)
        category = nlp.CATEGORIES.get(t.category)
        groups["category"][category.name if category else t.category].append(facts)
    result = {d: {name: rates(items, now) for name, items in sorted(g.items())} for d, g in groups.items()}
    result["all"] = {"合计": rates([f for items in groups["grid"].values() for f in items], now)}
    return result


def render(month: str, table: dict[str, dict[str, Rates]]) -> str:
    lines = [f"邻里 {month} 办理情况"]
    for dimension in ("all", *DIMENSIONS):
        lines.append("")
        lines.append(f"按{_TITLES.get(dimension, '全部')}" if dimension != "all" else "全部")
        # numbers first, names last: Chinese names are two columns wide and would break the alignment
        lines.append("  派单   响应率   解决率   满意率  按期办结率  名称")
        for name, r in table[dimension].items():
            lines.append(f"{r.dispatched:>6}{percent(r.response_rate):>9}{percent(r.resolution_rate):>9}"
                         f"{percent(r.satisfaction_rate):>9}{percent(r.on_time_rate):>11}  {name}")
    return "\n".join(lines)
