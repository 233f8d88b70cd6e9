"""The monthly report's counting, done by the database: one GROUP BY per dimension over the month's tickets.

Each group's counts are the seven numbers handlers.rates.Rates is made of, counted by exactly the rules of
handlers.rates.rates (property-tested against it in tests/test_reports.py):
    dispatched, responded (accepted by response_due), rated, solved (among the rated), satisfied (rating 1 or 2),
    due (resolved in time, or resolve_due passed by `now`), on_time (resolved by resolve_due).
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, DateTime, String, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from storage.models import Ticket

Counts = tuple[int, int, int, int, int, int, int]
DIMENSIONS = {"grid": Ticket.grid_id, "worker": Ticket.assignee_id, "committee": Ticket.route,
              "category": Ticket.category}
_T = Ticket


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a YYYY-MM month (UTC, as the report has always counted)."""
    try:
        start = datetime.strptime(month, "%Y-%m")
    except ValueError:
        raise ValueError(f"month must look like 2026-11, not {month!r}") from None
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def _count(condition) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def count_columns(now: datetime) -> list[ColumnElement[int]]:
    """The seven counts as aggregate columns, in Counts order (a comparison with NULL is never true)."""
    at = literal(now, DateTime())
    in_time = _T.resolved_at <= _T.resolve_due
    return [
        func.count(),
        _count(_T.accepted_at <= _T.response_due),
        _count(_T.rating.is_not(None)),
        _count(and_(_T.rating.is_not(None), _T.solved.is_(True))),
        _count(_T.rating.in_((1, 2))),
        _count(or_(in_time, _T.resolve_due <= at)),
        _count(in_time),
    ]


def _counts(row: Sequence) -> Counts:
    return tuple(int(v) for v in row)  # type: ignore[return-value]


async def month_counts(session: AsyncSession, start: datetime, end: datetime, now: datetime,
                       scope: ColumnElement[bool] | None = None) -> dict[str, dict[object, Counts]]:
    """dimension -> group key (grid id, assignee id, route, category code; None where unset) -> counts, for the
    tickets dispatched in [start, end) within `scope`; plus "all" -> {None: counts}."""
    where = [_T.dispatched_at >= start, _T.dispatched_at < end]
    if scope is not None:
        where.append(scope)
    columns = count_columns(now)
    result: dict[str, dict[object, Counts]] = {}
    for dimension, key in DIMENSIONS.items():
        rows = await session.execute(select(key, *columns).where(*where).group_by(key))
        result[dimension] = {row[0]: _counts(row[1:]) for row in rows}
    total = (await session.execute(select(*columns).where(*where))).one()
    result["all"] = {None: _counts(total)}
    return result


class _month_of(FunctionElement):
    """'YYYY-MM' of a timestamp, each database its own way."""

    type = String()
    inherit_cache = True


@compiles(_month_of, "sqlite")
def _month_of_sqlite(element, compiler, **kw) -> str:
    return f"strftime('%Y-%m', {compiler.process(element.clauses, **kw)})"


@compiles(_month_of, "postgresql")
def _month_of_postgresql(element, compiler, **kw) -> str:
    return f"to_char({compiler.process(element.clauses, **kw)}, 'YYYY-MM')"


async def counts_by_month(session: AsyncSession, start: datetime, end: datetime, now: datetime,
                          scope: ColumnElement[bool] | None = None) -> dict[str, Counts]:
    """'YYYY-MM' -> counts of the tickets dispatched that month, for the months in [start, end) (the dashboard's
    lines)."""
    month = _month_of(_T.dispatched_at)
    where = [_T.dispatched_at >= start, _T.dispatched_at < end]
    if scope is not None:
        where.append(scope)
    rows = await session.execute(select(month, *count_columns(now)).where(*where).group_by(month))
    return {row[0]: _counts(row[1:]) for row in rows}
