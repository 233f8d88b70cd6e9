"""The three rates and 按期办结率 (DESIGN.md), as pure functions over plain ticket facts.

响应率  accepted within the response limit ÷ dispatched
解决率  rated tickets the resident calls solved ÷ rated tickets
满意率  rated tickets rated 满意 or 基本满意 ÷ rated tickets
按期办结率  resolved within the resolution limit ÷ tickets whose limit has passed or that were resolved
A rate with nothing to divide by is None ("—"), never 0 or 100%.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from handlers.ticket_rules import satisfied


@dataclass(frozen=True)
class Facts:
    dispatched_at: datetime | None
    accepted_at: datetime | None
    response_due: datetime | None
    resolved_at: datetime | None
    resolve_due: datetime | None
    solved: bool | None
    rating: int | None


@dataclass(frozen=True)
class Rates:
    dispatched: int
    responded: int
    rated: int
    solved: int
    satisfied: int
    due: int
    on_time: int

    @property
    def response_rate(self) -> float | None:
        return _ratio(self.responded, self.dispatched)

    @property
    def resolution_rate(self) -> float | None:
        return _ratio(self.solved, self.rated)

    @property
    def satisfaction_rate(self) -> float | None:
        return _ratio(self.satisfied, self.rated)

    @property
    def on_time_rate(self) -> float | None:
        return _ratio(self.on_time, self.due)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def rates(tickets: Iterable[Facts], now: datetime) -> Rates:
    dispatched = responded = rated = solved = happy = due = on_time = 0
    for t in tickets:
        if t.dispatched_at is None:
            continue
        dispatched += 1
        if t.accepted_at is not None and t.response_due is not None and t.accepted_at <= t.response_due:
            responded += 1
        if t.rating is not None:
            rated += 1
            solved += bool(t.solved)
            happy += satisfied(t.rating)
        in_time = t.resolved_at is not None and t.resolve_due is not None and t.resolved_at <= t.resolve_due
        if in_time or (t.resolve_due is not None and t.resolve_due <= now):
            due += 1
            on_time += in_time
    return Rates(dispatched, responded, rated, solved, happy, due, on_time)


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"
