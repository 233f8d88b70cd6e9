r"""The ticket's life as pure rules: which action may happen in which state, and when time runs out.

    dispatched --accept--> accepted --resolve--> resolved --rate_good--> closed
         ^                   |   ^                  |  \--expire-----> closed (未评价)
         |                   |   |                  \--rate_bad--> reopened --resolve--> resolved
         +--reassign/return--+   +------note--------+
`submitted` is a ticket not yet routed (the resident is still choosing its category).
No I/O here, so every path can be tested exhaustively.
"""
from __future__ import annotations

from datetime import datetime, timedelta

STATUSES = ("submitted", "dispatched", "accepted", "resolved", "reopened", "closed")
OPEN = frozenset({"submitted", "dispatched", "accepted", "reopened"})  # someone still owes the resident

_MOVES: dict[tuple[str, str], str] = {
    ("submitted", "dispatch"): "dispatched",
    ("dispatched", "accept"): "accepted",
    ("reopened", "accept"): "reopened",  # already theirs; accepting again changes nothing
    ("accepted", "note"): "accepted",
    ("reopened", "note"): "reopened",
    ("accepted", "resolve"): "resolved",
    ("reopened", "resolve"): "resolved",
    ("submitted", "reassign"): "dispatched",
    ("dispatched", "reassign"): "dispatched",
    ("accepted", "reassign"): "dispatched",
    ("reopened", "reassign"): "dispatched",
    ("dispatched", "return"): "dispatched",  # back to the duty desk, which dispatches again
    ("accepted", "return"): "dispatched",
    ("resolved", "rate_good"): "closed",
    ("resolved", "rate_bad"): "reopened",
    ("resolved", "expire"): "closed",
}
ACTIONS = tuple(sorted({action for _, action in _MOVES}))


class NotAllowed(Exception):
    def __init__(self, status: str, action: str) -> None:
        super().__init__(f"{action} is not allowed when a ticket is {status}")
        self.status, self.action = status, action


def next_status(status: str, action: str) -> str:
    try:
        return _MOVES[(status, action)]
    except KeyError:
        raise NotAllowed(status, action) from None


def allowed(status: str, action: str) -> bool:
    return (status, action) in _MOVES


def deadlines(dispatched_at: datetime, response_hours: float, resolve_hours: float) -> tuple[datetime, datetime]:
    """When the handler must have accepted (responded), and when it must be resolved."""
    return dispatched_at + timedelta(hours=response_hours), dispatched_at + timedelta(hours=resolve_hours)


def remind_at(start: datetime, due: datetime, lead_fraction: float = 0.2) -> datetime:
    """A reminder goes out when this share of the allowed time is left (at least 1 minute before)."""
    lead = max((due - start) * lead_fraction, timedelta(minutes=1))
    return due - lead


def escalation_level(now: datetime, due: datetime, second_after: timedelta) -> int:
    """0 before the deadline; 1 (督办 to the committee head) after it; 2 (to the admins) after a further delay."""
    if now <= due:
        return 0
    return 2 if now > due + second_after else 1


def satisfied(rating: int | None) -> bool:
    """满意 (1) and 基本满意 (2) count as satisfied; 不满意 (3) and no rating do not."""
    return rating in (1, 2)
