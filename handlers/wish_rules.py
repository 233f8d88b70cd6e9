r"""The micro-wish's (微心愿) life as pure rules: who may do what in which status, the limits, the hours.

    submit --> submitted --approve--> approved --claim--> claimed --fulfil--> fulfilled --confirm--> closed
                 |  |                  |   ^                 ^  |                 |  \--expire---> closed (未确认)
                 |  +--reject--> rejected  +----release------+  |                 |
                 +--withdraw--> withdrawn <--withdraw (approved only: never once claimed)
                                                               +----dispute (没有完成)----+

Roles are what a person is to one wish: its `owner` (the resident who wrote it), another `resident` (anyone
else without a right to it, a Party member of another community included), a `member` (a Party member
registered (报到) in the wish's community), a `claimer` (a member who claimed or joined it), a `reviewer`
(residents' committee member or admin) and `system` (the scheduled jobs). A person may hold several roles
(a reviewer who is also a member); an action is allowed when any of them may do it.
No I/O here, so every (status, action, role) can be tested exhaustively.
"""
from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from handlers import ticket_rules

NEW = "new"  # before the wish exists: only `submit` applies
STATUSES = ("submitted", "approved", "claimed", "fulfilled", "closed", "rejected", "withdrawn")
OPEN = frozenset({"submitted", "approved", "claimed", "fulfilled"})  # count towards a resident's limit
FINAL = frozenset({"closed", "rejected", "withdrawn"})
OWNER, RESIDENT, MEMBER, CLAIMER, REVIEWER, SYSTEM = "owner", "resident", "member", "claimer", "reviewer", "system"
ROLES = (OWNER, RESIDENT, MEMBER, CLAIMER, REVIEWER, SYSTEM)
KINDS = {"material": "物质帮扶", "service": "便民服务", "public": "公益服务"}
DEFAULT_KIND = "service"

_MOVES: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    (NEW, "submit"): ("submitted", frozenset({OWNER})),
    ("submitted", "withdraw"): ("withdrawn", frozenset({OWNER})),
    ("approved", "withdraw"): ("withdrawn", frozenset({OWNER})),  # nobody has taken it on yet
    ("submitted", "approve"): ("approved", frozenset({REVIEWER})),
    ("submitted", "reject"): ("rejected", frozenset({REVIEWER})),
    ("submitted", "edit"): ("submitted", frozenset({REVIEWER})),  # the public text and the kind
    ("approved", "edit"): ("approved", frozenset({REVIEWER})),
    ("submitted", "remind"): ("submitted", frozenset({SYSTEM})),  # the review's time limit is near
    ("submitted", "escalate"): ("submitted", frozenset({SYSTEM})),  # ... and past: to the committee head
    ("approved", "claim"): ("claimed", frozenset({MEMBER})),
    ("claimed", "join"): ("claimed", frozenset({MEMBER})),  # a group claim (团队认领); the use case checks it is one
    ("claimed", "message"): ("claimed", frozenset({OWNER, CLAIMER})),  # relayed, neither sees the other's number
    ("fulfilled", "message"): ("fulfilled", frozenset({OWNER, CLAIMER})),
    ("claimed", "share_phone"): ("claimed", frozenset({OWNER})),  # 同意留电话
    ("fulfilled", "share_phone"): ("fulfilled", frozenset({OWNER})),
    ("claimed", "fulfil"): ("fulfilled", frozenset({CLAIMER})),
    ("claimed", "remind"): ("claimed", frozenset({SYSTEM})),  # no progress for a while
    ("claimed", "release"): ("approved", frozenset({SYSTEM, REVIEWER})),  # back on the wall
    ("fulfilled", "confirm"): ("closed", frozenset({OWNER})),
    ("fulfilled", "dispute"): ("claimed", frozenset({OWNER})),  # 没有完成: back to the claimer
    ("fulfilled", "remind"): ("fulfilled", frozenset({SYSTEM})),  # the resident has not answered yet
    ("fulfilled", "expire"): ("closed", frozenset({SYSTEM})),  # never answered: closed as 未确认
}
ACTIONS = tuple(sorted({action for _, action in _MOVES}))


class NotAllowed(Exception):
    """`reason` is "status" (nobody may do this now) or "role" (someone may, but not this person)."""

    def __init__(self, status: str, action: str, roles: Collection[str], reason: str) -> None:
        super().__init__(f"{action} by {'/'.join(sorted(roles))} is not allowed when a wish is {status} ({reason})")
        self.status, self.action, self.roles, self.reason = status, action, frozenset(roles), reason


def who_may(status: str, action: str) -> frozenset[str]:
    """The roles that may take this action in this status (empty: nobody)."""
    move = _MOVES.get((status, action))
    return move[1] if move else frozenset()


def allowed(status: str, action: str, roles: Iterable[str]) -> bool:
    return not who_may(status, action).isdisjoint(roles)


def next_status(status: str, action: str, roles: Iterable[str]) -> str:
    roles = frozenset(roles)
    move = _MOVES.get((status, action))
    if move is None:
        raise NotAllowed(status, action, roles, "status")
    if move[1].isdisjoint(roles):
        raise NotAllowed(status, action, roles, "role")
    return move[0]


@dataclass(frozen=True, slots=True)
class Actor:
    """A person acting on wishes, as the database knows them (None as an actor means the system)."""

    openid: str
    reviewer: bool = False  # an active residents_committee or admin role
    party_member: bool = False  # an active party_member role
    community_id: int | None = None  # where the Party member registered (报到); None: not registered


def roles_of(actor: Actor | None, owner: str, community_id: int | None, claimers: Collection[str]) -> frozenset[str]:
    """What this person is to one wish. A resident is never a member of their own wish (no claiming it),
    and a Party member only counts as a member in the community they registered with."""
    if actor is None:
        return frozenset({SYSTEM})
    roles = set()
    if actor.openid == owner:
        roles.add(OWNER)
    elif actor.openid in claimers:
        roles.add(CLAIMER)
    elif actor.party_member and actor.community_id is not None and actor.community_id == community_id:
        roles.add(MEMBER)
    if actor.reviewer:
        roles.add(REVIEWER)
    return frozenset(roles or {RESIDENT})


# -- limits and time ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Limits:
    """The settings of the wish rules (environment variables in handlers.wishes.limits_from_env)."""

    max_open: int = 3  # open wishes (submitted .. fulfilled) per resident
    review_hours: float = 72  # the community reviews a new wish within this time
    review_lead_fraction: float = 0.2  # reviewers are reminded when this share of it is left
    stale_days: float = 7  # a claim without progress this long: the claimers are reminded
    release_days: float = 3  # ... and this much longer: the wish goes back on the wall
    confirm_days: float = 7  # a fulfilled wish the resident never answers closes as 未确认 (reminded halfway)
    max_group: int = 5  # members in one group claim (团队认领), the first claimer included


def may_open_another(open_count: int, limits: Limits) -> bool:
    return open_count < limits.max_open


def review_due(submitted_at: datetime, limits: Limits) -> datetime:
    return submitted_at + timedelta(hours=limits.review_hours)


def review_stage(now: datetime, submitted_at: datetime, due: datetime, limits: Limits) -> str:
    """"waiting", "remind" (the reviewers, once) or "escalate" (the committee head, once), as for a ticket."""
    if now > due:
        return "escalate"
    return "remind" if now >= ticket_rules.remind_at(submitted_at, due, limits.review_lead_fraction) else "waiting"


def claim_stage(now: datetime, progress_at: datetime, limits: Limits) -> str:
    """"fresh", "remind" after stale_days without progress, "release" after release_days more."""
    idle = now - progress_at
    if idle >= timedelta(days=limits.stale_days + limits.release_days):
        return "release"
    return "remind" if idle >= timedelta(days=limits.stale_days) else "fresh"


def confirm_stage(now: datetime, fulfilled_at: datetime, limits: Limits) -> str:
    """"waiting", "remind" halfway through confirm_days, "expire" after them."""
    waited = now - fulfilled_at
    if waited >= timedelta(days=limits.confirm_days):
        return "expire"
    return "remind" if waited >= timedelta(days=limits.confirm_days / 2) else "waiting"


def may_join(group: bool, members: int, limits: Limits) -> bool:
    return group and members < limits.max_group


# -- hours ----------------------------------------------------------------------------------------------------
MAX_MINUTES = 100 * 60  # one wish: more than 100 hours is a typing mistake


def share_minutes(total: int, members: int) -> list[int]:
    """A group's reported time shared among its members in whole minutes: equal shares, the remainder to the
    earliest members, so the shares always add up to exactly what was reported (用时2小时 for 3: 40 minutes each)."""
    if members <= 0:
        return []
    share, rest = divmod(total, members)
    return [share + (1 if i < rest else 0) for i in range(members)]


def hours(minutes: int) -> float:
    """Minutes as hours for people and reports: two decimals."""
    return round(minutes / 60, 2)


_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_NUMBER = r"\d+(?:\.\d+)?|[零一二两三四五六七八九十]+"
_DURATION = re.compile(
    rf"(?:用时|用了|花了|共计|共|时长)?\s*(?:(?P<h>{_NUMBER})\s*个?\s*(?P<h_half>半)?\s*(?:小时|钟头|h|H)\s*(?P<half>半)?"
    rf"(?:\s*(?P<hm>{_NUMBER})\s*分钟?)?|(?P<half_only>半)\s*个?\s*(?:小时|钟头)|(?P<m>{_NUMBER})\s*(?:分钟|min))")


def _number(text: str) -> float | None:
    if text[0].isdigit():
        return float(text)
    if "十" in text:  # 十, 十二, 二十, 二十五 (up to 99 is plenty for hours)
        tens, _, ones = text.partition("十")
        if len(tens) > 1 or len(ones) > 1 or "十" in ones:
            return None
        t = _DIGITS.get(tens, None) if tens else 1
        o = _DIGITS.get(ones, None) if ones else 0
        return None if t is None or o is None else float(t * 10 + o)
    if len(text) == 1:
        return float(_DIGITS[text])
    return None


def parse_duration(text: str) -> tuple[int | None, str]:
    """(minutes, the text without it) for "说明 用时2小时" and the like: 1.5小时, 两个半小时, 90分钟, 2小时30分钟,
    半小时. (None, text) when there is no duration, or it is not more than 0 nor at most MAX_MINUTES."""
    for match in _DURATION.finditer(text):
        if match.group("half_only"):
            minutes = 30.0
        elif match.group("m"):
            value = _number(match.group("m"))
            minutes = value if value is not None else None
        else:
            value = _number(match.group("h"))
            extra = _number(match.group("hm")) if match.group("hm") else 0.0
            if value is None or extra is None:
                continue
            minutes = value * 60 + extra + (30 if match.group("h_half") or match.group("half") else 0)
        if minutes is None or not 0 < minutes <= MAX_MINUTES:
            continue
        rest = (text[:match.start()] + " " + text[match.end():]).strip(" ，,。；;")
        return round(minutes), re.sub(r"\s{2,}", " ", rest)
    return None, text.strip()
