"""`linli console seed`: many synthetic tickets for `linli bench console` (never for a live community).

Tickets go in through COPY on PostgreSQL and big executemany batches on SQLite, in a community of their own
("bench", ten grids, a worker each); ids are reserved from the tickets' id sequence like any process's block.
Statuses, ratings and times follow the ticket's life (accepted after dispatch, resolved after that, some late).
"""
from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

import nlp
from bot.app import FIRST_TICKET_ID
from storage.ids import ticket_number
from storage.models import Community, Grid, IdBlock, Staff, Ticket

BATCH = 50_000
GRIDS = 10
BENCH_ADMIN = "bench-admin"
COLUMNS = ("id", "number", "openid", "text", "category", "confidence", "keywords", "intent", "emergency", "status",
           "created_at", "updated_at", "route", "grid_id", "household_id", "assignee_id", "dispatched_at",
           "accepted_at", "resolved_at", "closed_at", "response_due", "resolve_due", "reminded", "escalation_level",
           "escalated_at", "solved", "rating", "close_reason", "reopen_count", "cluster_id")
_TEXTS = ("楼下垃圾三天没人收了", "晚上广场舞太吵", "路灯坏了好几天", "消防通道被车堵住", "楼上漏水到我家",
          "电梯又停了", "小区门口乱停车", "有人遛狗不牵绳", "独居老人需要帮忙买菜", "楼道里堆满杂物")


async def _bench_community(engine: AsyncEngine, now: datetime) -> tuple[list[int], dict[int, int]]:
    """(grid ids, grid id -> its worker's staff id) of the bench community, made on first use."""
    async with engine.begin() as conn:
        community = (await conn.execute(select(Community.id).where(Community.code == "bench"))).scalar()
        if community is None:
            community = (await conn.execute(insert(Community).values(code="bench", name="压测社区")
                                            .returning(Community.id))).scalar_one()
            for i in range(1, GRIDS + 1):
                grid = (await conn.execute(insert(Grid).values(community_id=community, code=f"b{i}",
                                                               name=f"压测{i}号网格").returning(Grid.id))).scalar_one()
                await conn.execute(insert(Staff).values(openid=f"bench-worker-{i}", role="grid_worker", grid_id=grid,
                                                        is_head=False, name=f"压测网格员{i}", active=True, created_at=now))
            await conn.execute(insert(Staff).values(openid=BENCH_ADMIN, role="admin", grid_id=None, is_head=False,
                                                    name="压测管理员", active=True, created_at=now))
        grids = list((await conn.execute(select(Grid.id).where(Grid.community_id == community).order_by(Grid.id))).scalars())
        workers = dict((await conn.execute(select(Staff.grid_id, Staff.id).where(
            Staff.grid_id.in_(grids), Staff.role == "grid_worker"))).all())
    return grids, workers


async def _reserve(engine: AsyncEngine, n: int) -> int:
    """The first of n ids taken from the tickets' sequence."""
    t = IdBlock.__table__
    async with engine.begin() as conn:
        moved = await conn.execute(update(t).where(t.c.name == "tickets").values(next_value=t.c.next_value + n))
        if moved.rowcount == 0:
            await conn.execute(insert(t).values(name="tickets", next_value=FIRST_TICKET_ID + n))
        return (await conn.execute(select(t.c.next_value).where(t.c.name == "tickets"))).scalar_one() - n


def _ticket(rnd: random.Random, ticket_id: int, grids: list[int], workers: dict[int, int], now: datetime,
            span_s: float) -> tuple:
    category = rnd.choice(list(nlp.CATEGORIES.values()))
    created = now - timedelta(seconds=rnd.random() * span_s)
    response_due = created + timedelta(hours=category.response_hours)
    resolve_due = created + timedelta(hours=category.resolve_hours)
    grid = rnd.choice(grids)
    status = rnd.choices(("dispatched", "accepted", "resolved", "closed", "reopened"), (8, 12, 10, 67, 3))[0]
    if created > now - timedelta(hours=category.response_hours * 2):
        status = "dispatched"
    accepted = resolved = closed = None
    solved = rating = reason = None
    assignee = None
    if status != "dispatched":
        accepted = created + timedelta(hours=category.response_hours * rnd.uniform(0.1, 1.3))
        assignee = workers.get(grid)
    if status in ("resolved", "closed"):
        resolved = accepted + timedelta(hours=category.resolve_hours * rnd.uniform(0.05, 1.2))
    if status == "closed":
        closed = resolved + timedelta(hours=rnd.uniform(1, 72))
        if rnd.random() < 0.8:
            rating, reason = rnd.choices((1, 2, 3), (60, 30, 10))[0], "rated"
            solved = rating != 3 or rnd.random() < 0.3
        else:
            reason = "unrated"
    updated = closed or resolved or accepted or created
    return (ticket_id, ticket_number(ticket_id), f"bench-resident-{rnd.randrange(200_000)}", rnd.choice(_TEXTS),
            category.code, 0.9, "", "complaint", None, status, created, updated, category.route, grid, None, assignee,
            created, accepted, resolved, closed, response_due, resolve_due, False, 0, None, solved, rating, reason, 0,
            None)


async def seed_tickets(engine: AsyncEngine, n: int, months: int, now: datetime,
                       progress: Callable[[str], None] = lambda _: None, seed: int = 17) -> int:
    grids, workers = await _bench_community(engine, now)
    first = await _reserve(engine, n)
    rnd = random.Random(seed)
    span_s = months * 30.4 * 86400
    done = 0
    while done < n:
        size = min(BATCH, n - done)
        rows = [_ticket(rnd, first + done + i, grids, workers, now, span_s) for i in range(size)]
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                raw = await conn.get_raw_connection()
                await raw.driver_connection.copy_records_to_table("tickets", records=rows, columns=list(COLUMNS))
            else:
                await conn.execute(insert(Ticket.__table__), [dict(zip(COLUMNS, r)) for r in rows])
        done += size
        progress(f"{done:,} / {n:,}")
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:  # committed: statistics roll back with their transaction
            await conn.exec_driver_sql("ANALYZE tickets")
    return done
