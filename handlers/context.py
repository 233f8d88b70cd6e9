"""What a handler may use: storage, shared state, ids, the clock and a few limits."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import async_sessionmaker

from handlers.dispatch import Directory
from storage.db import Reader
from storage.ids import IdAllocator
from storage.state import StateStore


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Context:
    read: Reader  # lean Core reads on the hot path: await ctx.read(fn, *args)
    sessions: async_sessionmaker
    state: StateStore
    ticket_ids: IdAllocator
    directory: Directory  # staff, cached: whom a new ticket's notices go to
    now: Callable[[], datetime] = utcnow  # naive UTC; tests pass a travelling clock
    attach_window_s: float = 600  # a picture or place sent this soon after a ticket belongs to it
    conversation_ttl_s: float = 1800
    time_limits: dict[str, tuple[float, float]] = field(default_factory=dict)  # category -> (response, resolve) h
    hotspot_window_s: float = 72 * 3600  # reports this close in time can be the same hot spot
    hotspot_households: int = 5  # a hot spot this large becomes a candidate 议题

    async def conversation(self, openid: str) -> dict:
        raw = await self.state.get("conv:" + openid)
        return json.loads(raw) if raw else {}

    async def set_conversation(self, openid: str, value: dict) -> None:
        await self.state.set("conv:" + openid, json.dumps(value, ensure_ascii=False), self.conversation_ttl_s)

    async def end_conversation(self, openid: str) -> None:
        await self.state.delete("conv:" + openid)
