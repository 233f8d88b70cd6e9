r"""四民工作法 as pure rules: the life of a proposal (议题) and of a vote, who may do what when, and the small
rules of order. No I/O, so every status x action x role can be tested.

A proposal (议题):

    民事民提  cosigning --reach--> candidate           (a resident raises it; households co-sign; at the
                 |                     |                 threshold the committee is told; hot spots start
                 +--accept/merge/decline/withdraw------+  as candidates)
                        |
    民事民议           accepted --deliberate/meet--> deliberating
                        \--------open_vote-----------/
    民事民决                         voting --carry--> decided      (the vote final and passed)
                                     voting --defeat--> rejected    (final and not passed; may be reconsidered)
                                     voting --annul--> deliberating (the vote annulled after an objection)
    民事民办                         decided --assign--> doing      (tasks: tickets to responsible bodies)
    民事民评                decided/doing --complete--> evaluating --close--> evaluated (voters rated it)

A vote:

    open --close--> closed --publish--> publicised (公示期: objections) --finalise--> final
                                                        \--annul--> annulled

While a vote is open nobody, staff included, sees how it stands (`see_result` is not allowed in `open`);
staff and building captains see participation (who has voted, never how).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fractions import Fraction

CHINA = timezone(timedelta(hours=8))


class NotAllowed(Exception):
    """The action does not exist in this status."""

    def __init__(self, status: str, action: str) -> None:
        super().__init__(f"{action} is not allowed when it is {status}")
        self.status, self.action = status, action


class Forbidden(NotAllowed):
    """The action exists in this status, but not for this role."""

    def __init__(self, status: str, action: str, role: str) -> None:
        Exception.__init__(self, f"a {role} may not {action} when it is {status}")
        self.status, self.action, self.role = status, action, role


@dataclass(frozen=True)
class Machine:
    statuses: tuple[str, ...]
    roles: tuple[str, ...]
    moves: dict[tuple[str, str], str]  # (status, action) -> next status
    who: dict[str, frozenset[str]]  # action -> roles that may do it
    final: frozenset[str]

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(sorted(self.who))

    def allowed(self, status: str, action: str, role: str) -> bool:
        return (status, action) in self.moves and role in self.who.get(action, ())

    def next_status(self, status: str, action: str, role: str) -> str:
        try:
            after = self.moves[(status, action)]
        except KeyError:
            raise NotAllowed(status, action) from None
        if role not in self.who[action]:
            raise Forbidden(status, action, role)
        return after


def _machine(statuses, roles, table, who, final) -> Machine:
    moves = {(status, action): after for action, pairs in table.items() for status, after in pairs}
    return Machine(tuple(statuses), tuple(roles), moves, {a: frozenset(r) for a, r in who.items()},
                   frozenset(final))


# -- proposals -----------------------------------------------------------------------------------------------------
PROPOSAL_STATUSES = ("cosigning", "candidate", "accepted", "merged", "declined", "withdrawn", "deliberating",
                     "voting", "decided", "rejected", "doing", "evaluating", "evaluated")
# proposer: the resident who raised it; resident: anyone else; committee: 居委会/业委会/议事会 staff and admins;
# system: the service itself (thresholds, vote results)
PROPOSAL_ROLES = ("proposer", "resident", "committee", "system")
_DISCUSSABLE = ("cosigning", "candidate", "accepted", "deliberating", "voting", "decided", "doing", "evaluating")
_BEFORE_ACCEPTANCE = ("cosigning", "candidate")

PROPOSALS = _machine(
    PROPOSAL_STATUSES, PROPOSAL_ROLES,
    {
        "cosign": [(s, s) for s in _BEFORE_ACCEPTANCE],
        "reach": [("cosigning", "candidate")],
        "accept": [(s, "accepted") for s in _BEFORE_ACCEPTANCE],
        "merge": [(s, "merged") for s in (*_BEFORE_ACCEPTANCE, "accepted")],
        "decline": [(s, "declined") for s in _BEFORE_ACCEPTANCE],
        "withdraw": [(s, "withdrawn") for s in _BEFORE_ACCEPTANCE],
        "comment": [(s, s) for s in _DISCUSSABLE],
        "deliberate": [("accepted", "deliberating")],
        "meet": [("accepted", "deliberating"), ("deliberating", "deliberating")],
        "open_vote": [("accepted", "voting"), ("deliberating", "voting")],
        "carry": [("voting", "decided")],
        "defeat": [("voting", "rejected")],
        "annul": [("voting", "deliberating")],
        "reconsider": [("rejected", "deliberating")],
        "assign": [("decided", "doing"), ("doing", "doing")],
        "complete": [("decided", "evaluating"), ("doing", "evaluating")],
        "rate": [("evaluating", "evaluating")],
        "close": [("evaluating", "evaluated")],
    },
    {
        "cosign": {"resident"},  # the proposer's household is its first supporter already
        "reach": {"system"},
        "accept": {"committee"}, "merge": {"committee"}, "decline": {"committee"},
        "withdraw": {"proposer"},
        "comment": {"proposer", "resident", "committee"},
        "deliberate": {"committee"}, "meet": {"committee"}, "open_vote": {"committee"},
        "carry": {"system"}, "defeat": {"system"}, "annul": {"system"},
        "reconsider": {"committee"},
        "assign": {"committee"}, "complete": {"committee", "system"},
        "rate": {"proposer", "resident"},  # the use case checks they voted on it
        "close": {"committee", "system"},
    },
    final=("merged", "declined", "withdrawn", "evaluated"),
)


def initial_status(source: str) -> str:
    """A resident's proposal collects co-signatures; a hot spot is put to the committee at once; one the
    committee raises itself is accepted."""
    return {"resident": "cosigning", "cluster": "candidate", "committee": "accepted"}[source]


# -- votes -----------------------------------------------------------------------------------------------------------
VOTE_STATUSES = ("open", "closed", "publicised", "final", "annulled")
# voter: on the vote's roll; resident: anyone else; committee: staff who run votes; captain: 楼栋长 and grid
# workers (participation in their buildings); system: the scheduler
VOTE_ROLES = ("voter", "resident", "committee", "captain", "system")
_AFTER_CLOSE = ("closed", "publicised", "final", "annulled")
_EVERYONE = set(VOTE_ROLES)

VOTES = _machine(
    VOTE_STATUSES, VOTE_ROLES,
    {
        "cast": [("open", "open")],
        "paper": [("open", "open")],  # staff enter a paper ballot
        "close": [("open", "closed")],
        "publish": [("closed", "publicised")],
        "object": [("publicised", "publicised")],
        "answer": [("publicised", "publicised")],
        "finalise": [("publicised", "final")],
        "annul": [("publicised", "annulled")],
        "see_participation": [(s, s) for s in VOTE_STATUSES],
        "see_result": [(s, s) for s in _AFTER_CLOSE],
        "see_bulletin": [(s, s) for s in _AFTER_CLOSE],
    },
    {
        "cast": {"voter"}, "paper": {"committee"},
        "close": {"committee", "system"}, "publish": {"committee", "system"},
        "object": {"voter"}, "answer": {"committee"},
        "finalise": {"committee", "system"}, "annul": {"committee"},
        "see_participation": {"committee", "captain"},
        "see_result": _EVERYONE, "see_bulletin": _EVERYONE,
    },
    final=("final", "annulled"),
)


def may_finalise(now: datetime, objection_until: datetime | None, unanswered: int) -> bool:
    """A publicised result becomes final once its objection window (公示期) is over and every objection has
    an answer."""
    return objection_until is not None and now >= objection_until and unanswered == 0


# -- rules of order ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Order:
    """Per-community settings of deliberation (deliberation_settings rows override these defaults)."""

    cosign_households: int = 10  # the committee is told at this many supporting households ...
    cosign_percent: Fraction = Fraction(5)  # ... or at this percentage of the scope's households
    comments_per_day: int = 2  # per person, per matter, per China day (武汉's 社区协商议事规则)
    comment_chars: int = 300
    objection_days: int = 7  # 公示期 of a vote's result
    remind_hours: int = 24  # voters who have not voted are reminded this long before the close
    sign_in_before: timedelta = timedelta(hours=1)  # a meeting's sign-in opens this long before it starts
    sign_in_after: timedelta = timedelta(hours=4)  # ... and closes this long after


def cosign_threshold(households_in_scope: int, order: Order = Order()) -> int:
    """Supporting households (the proposer's included) at which the committee is told: the fixed number or
    the percentage of the scope's households, whichever comes first; at least 1."""
    share = math.ceil(Fraction(households_in_scope) * order.cosign_percent / 100) if households_in_scope else 0
    candidates = [n for n in (order.cosign_households, share) if n > 0]
    return max(1, min(candidates)) if candidates else 1


def china_day(at: datetime) -> str:
    """The China date of a naive UTC time: the day a comment counts against."""
    return at.replace(tzinfo=timezone.utc).astimezone(CHINA).date().isoformat()


def comment_problem(text: str, earlier_today: int, order: Order = Order()) -> str | None:
    """Why this comment may not be added (None when it may): empty, too long, or the day's limit used."""
    if not text.strip():
        return "empty"
    if len(text) > order.comment_chars:
        return "too_long"
    if earlier_today >= order.comments_per_day:
        return "limit"
    return None


def may_sign_in(now: datetime, starts_at: datetime, order: Order = Order()) -> bool:
    return starts_at - order.sign_in_before <= now <= starts_at + order.sign_in_after


def remind_at(opened_at: datetime, closes_at: datetime, order: Order = Order()) -> datetime:
    """When voters who have not voted are reminded: remind_hours before the close, or half-way through a
    shorter vote."""
    return max(closes_at - timedelta(hours=order.remind_hours), opened_at + (closes_at - opened_at) / 2)
