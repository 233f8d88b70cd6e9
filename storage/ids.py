"""Ids that are known before the insert, so a receipt can be written in the same batch as its ticket.

Each process reserves a block of ids in one short transaction and hands them out from memory; the next block
is reserved in the background while half of the current one is left. A process that dies loses the rest of
its blocks: numbers may have gaps, never repeats.
"""
from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import IdBlock

log = logging.getLogger(__name__)
_T = IdBlock.__table__


class IdAllocator:
    """Blocks start at `block` ids and double (up to `max_block`) while each lasts less than `busy_s`: a quiet
    community keeps short numbers and small gaps; a burst does not stop for a reservation every 100 messages.
    The next block is reserved before the current one runs out, so no ticket waits for a reservation (a
    transaction and, on SQLite, a sync to disk that contends with the group commit for the write lock: under
    load every such wait put 100-400 ms on the tickets behind it)."""

    def __init__(self, engine: AsyncEngine, name: str, *, start: int = 1, block: int = 100, max_block: int = 1000,
                 busy_s: float = 10, clock=time.monotonic) -> None:
        self._engine, self._name, self._start = engine, name, start
        self._min_block, self._max_block, self._block = block, max_block, block
        self._busy_s, self._clock, self._reserved_at = busy_s, clock, None
        self._next = self._end = self._half = 0
        self._spare: tuple[int, int] | None = None  # the next block, reserved ahead
        self._reserving: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    async def next(self) -> int:
        if self._next >= self._end:
            async with self._lock:
                if self._next >= self._end:
                    start, self._end = await self._take_spare()
                    self._next, self._half = start, (start + self._end) // 2
        value = self._next
        self._next += 1
        if self._next >= self._half and self._spare is None and self._reserving is None:
            self._reserving = asyncio.get_running_loop().create_task(self._reserve_spare())
        return value

    async def _take_spare(self) -> tuple[int, int]:
        if self._reserving is not None:
            await asyncio.wait([self._reserving])  # its failure is logged; we reserve afresh below
        if self._spare is None:
            await self._reserve_spare(log_failure=False)  # nothing reserved ahead: this one waits
        block, self._spare = self._spare, None
        return block

    async def _reserve_spare(self, log_failure: bool = True) -> None:
        try:
            self._spare = await self._reserve(self._resize())
        except Exception as exc:
            if not log_failure:
                raise
            log.warning("could not reserve the next %s ids ahead: %s", self._name, exc)
        finally:
            self._reserving = None

    async def settled(self) -> None:
        """Return once no reservation is under way (before the engine closes, say)."""
        if self._reserving is not None:
            await asyncio.wait([self._reserving])

    def _resize(self) -> int:
        now = self._clock()
        if self._reserved_at is not None and now - self._reserved_at < self._busy_s:
            self._block = min(self._block * 2, self._max_block)
        else:
            self._block = self._min_block
        self._reserved_at = now
        return self._block

    async def _reserve(self, size: int) -> tuple[int, int]:
        for _ in range(2):  # the first reservation of a fresh database may race another process's insert
            try:
                async with self._engine.begin() as conn:
                    where = _T.c.name == self._name
                    moved = await conn.execute(update(_T).where(where).values(next_value=_T.c.next_value + size))
                    if moved.rowcount == 0:
                        await conn.execute(insert(_T).values(name=self._name, next_value=self._start + size))
                    end = (await conn.execute(select(_T.c.next_value).where(where))).scalar_one()
                    return end - size, end
            except IntegrityError:
                continue
        raise RuntimeError(f"could not reserve ids for {self._name}")


_DAMM = (  # the weakly totally anti-symmetric quasigroup of order 10
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2), (7, 0, 9, 2, 1, 5, 4, 8, 6, 3), (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6), (6, 1, 2, 3, 0, 4, 5, 9, 7, 8), (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4), (8, 9, 4, 5, 3, 6, 2, 0, 1, 7), (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def damm_check_digit(number: int) -> int:
    """Damm algorithm: catches every single wrong digit and every swap of two adjacent digits."""
    interim = 0
    for digit in map(int, str(number)):
        interim = _DAMM[interim][digit]
    return interim


def ticket_number(ticket_id: int) -> str:
    """The tracking number a resident reads aloud: the id plus a check digit."""
    return f"{ticket_id}{damm_check_digit(ticket_id)}"


def is_valid_ticket_number(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) >= 2 and damm_check_digit(int(text[:-1])) == int(text[-1])


async def find_numbered(session, model, ref):
    """A row of a table in the tickets' number space (proposals, meetings, votes) by its number as printed
    (id + check digit) or by its bare id; the number wins when both fit."""
    text = str(ref).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    if is_valid_ticket_number(text):
        found = (await session.execute(select(model).where(model.number == text))).scalar_one_or_none()
        if found is not None:
            return found
    return await session.get(model, int(text))
