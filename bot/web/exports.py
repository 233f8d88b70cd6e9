"""The month's report as an Excel workbook (openpyxl): a summary, one sheet per grid, worker, committee and
category with the three rates and 按期办结率, and the month's tickets. `/console/reports/YYYY-MM.xlsx` and
`linli report --month M --xlsx FILE` write the same file."""
from __future__ import annotations

import asyncio
import io
from datetime import datetime, timedelta

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from handlers import texts
from handlers.rates import Rates
from handlers.report import DIMENSIONS, TITLES, category_name, group_names, monthly, route_name
from storage import reports
from storage.models import Ticket

CHINA = timedelta(hours=8)
RATE_HEADER = ["名称", "派单", "按时签收", "已评价", "已解决", "满意", "应办结", "按期办结",
               "响应率", "解决率", "满意率", "按期办结率"]
TICKET_HEADER = ["编号", "派单时间", "类别", "状态", "网格", "承办单位", "办理人", "签收时间", "办结时间",
                 "办结时限", "评价", "内容"]


def _rate_row(name: str, r: Rates) -> list:
    return [name, r.dispatched, r.responded, r.rated, r.solved, r.satisfied, r.due, r.on_time,
            r.response_rate, r.resolution_rate, r.satisfaction_rate, r.on_time_rate]


def _local(at: datetime | None) -> datetime | None:
    return None if at is None else at + CHINA


async def month_workbook(sessions: async_sessionmaker, month: str, now: datetime,
                         scope: ColumnElement[bool] | None = None) -> bytes:
    start, end = reports.month_bounds(month)
    async with sessions() as session:
        table = await monthly(session, month, now, scope)
        names = await group_names(session)
        where = [Ticket.dispatched_at >= start, Ticket.dispatched_at < end] + ([] if scope is None else [scope])
        tickets = (await session.execute(select(
            Ticket.number, Ticket.dispatched_at, Ticket.category, Ticket.status, Ticket.grid_id, Ticket.route,
            Ticket.assignee_id, Ticket.accepted_at, Ticket.resolved_at, Ticket.resolve_due, Ticket.rating,
            Ticket.text).where(*where).order_by(Ticket.dispatched_at, Ticket.id))).all()
    rows = [[t.number, _local(t.dispatched_at), category_name(t.category), texts.STATUS_NAMES.get(t.status, t.status),
             names["grid"].get(t.grid_id, ""), route_name(t.route),
             names["worker"].get(t.assignee_id, "") if t.assignee_id else "", _local(t.accepted_at),
             _local(t.resolved_at), _local(t.resolve_due), texts.RATING_NAMES.get(t.rating, ""), t.text]
            for t in tickets]
    return await asyncio.to_thread(_build, month, table, rows)  # CPU work: not on the event loop


def _build(month: str, table: dict[str, dict[str, Rates]], ticket_rows: list[list]) -> bytes:
    book = Workbook(write_only=True)
    for dimension in ("all", *DIMENSIONS):
        sheet = book.create_sheet("汇总" if dimension == "all" else f"按{TITLES[dimension]}")
        sheet.append([f"邻里 {month} 办理情况（{TITLES[dimension]}）"])
        sheet.append(RATE_HEADER)
        for name, r in table[dimension].items():
            sheet.append(_cells(sheet, _rate_row(name, r), percent_from=8))
    sheet = book.create_sheet("工单")
    sheet.append(TICKET_HEADER)
    for row in ticket_rows:  # plain values (a cell object per value takes twice as long), formulas excepted
        sheet.append([_text(sheet, v) if isinstance(v, str) and v[:1] == "=" else v for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _text(sheet, value: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"  # a resident's words starting with '=' must not become a formula
    return cell


def _cells(sheet, values: list, percent_from: int | None = None) -> list[WriteOnlyCell]:
    """Cells of one row. Text is always text: a resident's words starting with '=' must not become a formula."""
    cells = []
    for i, value in enumerate(values):
        cell = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            cell.data_type = "s"
        elif isinstance(value, datetime):
            cell.number_format = "yyyy-mm-dd hh:mm"
        elif percent_from is not None and i >= percent_from and value is not None:
            cell.number_format = "0.0%"
        cells.append(cell)
    return cells
