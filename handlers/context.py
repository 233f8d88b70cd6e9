"""What a handler may use: storage, shared state, ids, the clock and a few limits."""
from __future__ import annotations

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
    conversation_ttl_s: float = 1800  # an unanswered question is forgotten after this long
    rating_timeout_s: float = 72 * 3600  # … except the rating question, open until the ticket closes unrated
    time_limits: dict[str, tuple[float, float]] = field(default_factory=dict)  # category -> (response, resolve) h
    hotspot_window_s: float = 72 * 3600  # reports this close in time can be the same hot spot
    hotspot_households: int = 5  # a hot spot this large becomes a candidate 议题
    public_url: str = "http://127.0.0.1:8080"  # what links in replies start with (LINLI_PUBLIC_URL)
