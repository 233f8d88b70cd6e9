"""The proposal and vote machines: every status x action x role against diagrams written out here, and
the small rules of order."""
from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers import deliberation_rules as R
from handlers.deliberation_rules import PROPOSALS, VOTES, Forbidden, NotAllowed, Order


@pytest.fixture(scope="session", autouse=True)
def _warm_nlp():
    """Pure rules: no classifier."""


C, S, P, RES = "committee", "system", "proposer", "resident"
TALK = {P, RES, C}
# (status, action) -> (next status, roles that may), independently of the module's tables
PROPOSAL_DIAGRAM = {
    ("cosigning", "cosign"): ("cosigning", {RES}),
    ("candidate", "cosign"): ("candidate", {RES}),
    ("cosigning", "reach"): ("candidate", {S}),
    ("cosigning", "accept"): ("accepted", {C}), ("candidate", "accept"): ("accepted", {C}),
    ("cosigning", "merge"): ("merged", {C}), ("candidate", "merge"): ("merged", {C}),
    ("accepted", "merge"): ("merged", {C}),
    ("cosigning", "decline"): ("declined", {C}), ("candidate", "decline"): ("declined", {C}),
    ("cosigning", "withdraw"): ("withdrawn", {P}), ("candidate", "withdraw"): ("withdrawn", {P}),
    ("accepted", "deliberate"): ("deliberating", {C}),
    ("accepted", "meet"): ("deliberating", {C}), ("deliberating", "meet"): ("deliberating", {C}),
    ("accepted", "open_vote"): ("voting", {C}), ("deliberating", "open_vote"): ("voting", {C}),
    ("voting", "carry"): ("decided", {S}),
    ("voting", "defeat"): ("rejected", {S}),
    ("voting", "annul"): ("deliberating", {S}),
    ("rejected", "reconsider"): ("deliberating", {C}),
    ("decided", "assign"): ("doing", {C}), ("doing", "assign"): ("doing", {C}),
    ("decided", "complete"): ("evaluating", {C, S}), ("doing", "complete"): ("evaluating", {C, S}),
    ("evaluating", "rate"): ("evaluating", {P, RES}),
    ("evaluating", "close"): ("evaluated", {C, S}),
    **{(s, "comment"): (s, TALK) for s in ("cosigning", "candidate", "accepted", "deliberating", "voting",
                                            "decided", "doing", "evaluating")},
}
V, CAP = "voter", "captain"
EVERYONE = {V, RES, C, CAP, S}
VOTE_DIAGRAM = {
    ("open", "cast"): ("open", {V}),
    ("open", "paper"): ("open", {C}),
    ("open", "close"): ("closed", {C, S}),
    ("closed", "publish"): ("publicised", {C, S}),
    ("publicised", "object"): ("publicised", {V}),
    ("publicised", "answer"): ("publicised", {C}),
    ("publicised", "finalise"): ("final", {C, S}),
    ("publicised", "annul"): ("annulled", {C}),
    **{(s, "see_participation"): (s, {C, CAP}) for s in ("open", "closed", "publicised", "final", "annulled")},
    **{(s, "see_result"): (s, EVERYONE) for s in ("closed", "publicised", "final", "annulled")},
    **{(s, "see_bulletin"): (s, EVERYONE) for s in ("closed", "publicised", "final", "annulled")},
}
CASES = [(PROPOSALS, PROPOSAL_DIAGRAM, s, a, r) for s, a, r in
         product(PROPOSALS.statuses, PROPOSALS.actions, PROPOSALS.roles)] + \
        [(VOTES, VOTE_DIAGRAM, s, a, r) for s, a, r in product(VOTES.statuses, VOTES.actions, VOTES.roles)]


@pytest.mark.parametrize(("machine", "diagram", "status", "action", "role"), CASES)
def test_every_status_action_role_follows_the_diagram(machine, diagram, status, action, role):
    entry = diagram.get((status, action))
    if entry is not None and role in entry[1]:
        assert machine.allowed(status, action, role)
        assert machine.next_status(status, action, role) == entry[0]
        return
    assert not machine.allowed(status, action, role)
    expected = Forbidden if entry is not None else NotAllowed
    with pytest.raises(expected) as caught:
        machine.next_status(status, action, role)
    assert type(caught.value) is expected and (caught.value.status, caught.value.action) == (status, action)


@pytest.mark.parametrize(("machine", "diagram"), [(PROPOSALS, PROPOSAL_DIAGRAM), (VOTES, VOTE_DIAGRAM)])
def test_the_diagrams_use_only_known_words(machine, diagram):
    assert {s for s, _ in diagram} | {after for after, _ in diagram.values()} <= set(machine.statuses)
    assert {a for _, a in diagram} == set(machine.actions)
    assert set().union(*(roles for _, roles in diagram.values())) == set(machine.roles)


@pytest.mark.parametrize(("machine", "start"), [(PROPOSALS, ["cosigning", "candidate", "accepted"]),
                                                (VOTES, ["open"])])
def test_finals_are_final_and_every_status_is_reachable(machine, start):
    for status in machine.final:
        assert not any(machine.allowed(status, a, r) and machine.next_status(status, a, r) != status
                       for a in machine.actions for r in machine.roles)
    reached, frontier = set(start), list(start)
    while frontier:
        status = frontier.pop()
        for action, role in product(machine.actions, machine.roles):
            if machine.allowed(status, action, role) and (nxt := machine.next_status(status, action, role)) not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert reached == set(machine.statuses)


def test_nobody_sees_how_a_running_vote_stands():
    assert not any(VOTES.allowed("open", a, r) for a in ("see_result", "see_bulletin") for r in VOTES.roles)
    assert VOTES.allowed("open", "see_participation", "captain")
    assert not VOTES.allowed("open", "see_participation", "voter")
    assert not any(VOTES.allowed(s, a, r) for s in ("closed", "publicised", "final", "annulled")
                   for a in ("cast", "paper") for r in VOTES.roles)  # after the close nothing is accepted


def test_initial_statuses():
    assert [R.initial_status(s) for s in ("resident", "cluster", "committee")] == ["cosigning", "candidate",
                                                                                   "accepted"]
    with pytest.raises(KeyError):
        R.initial_status("anonymous")


# -- rules of order ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("households", "threshold"), [(0, 10), (1, 1), (40, 2), (200, 10), (201, 10),
                                                       (100, 5), (1000, 10), (19, 1), (21, 2)])
def test_cosign_threshold_is_ten_households_or_five_percent_whichever_comes_first(households, threshold):
    assert R.cosign_threshold(households) == threshold


@given(st.integers(0, 5000), st.integers(0, 50), st.integers(0, 100))
def test_cosign_threshold_is_reachable_and_never_above_the_fixed_number(households, fixed, percent):
    order = Order(cosign_households=fixed, cosign_percent=Fraction(percent))
    t = R.cosign_threshold(households, order)
    assert t >= 1
    if fixed:
        assert t <= fixed
    if percent and households:
        assert t <= max(1, -(-households * percent // 100))


def test_comment_rules():
    order = Order(comments_per_day=2, comment_chars=5)
    assert R.comment_problem("好主意", 0, order) is None
    assert R.comment_problem("  ", 0, order) == "empty"
    assert R.comment_problem("太长太长太长", 0, order) == "too_long"
    assert R.comment_problem("第三次", 2, order) == "limit"
    assert R.comment_problem("第二次", 1, order) is None


def test_a_comment_counts_against_the_china_day():
    assert R.china_day(datetime(2026, 12, 1, 15, 59)) == "2026-12-01"
    assert R.china_day(datetime(2026, 12, 1, 16, 0)) == "2026-12-02"  # midnight in Beijing


def test_meeting_sign_in_window():
    start = datetime(2026, 12, 1, 12)
    assert not R.may_sign_in(start - timedelta(hours=1, seconds=1), start)
    assert R.may_sign_in(start - timedelta(hours=1), start) and R.may_sign_in(start + timedelta(hours=4), start)
    assert not R.may_sign_in(start + timedelta(hours=4, seconds=1), start)


def test_finalise_waits_for_the_window_and_for_every_answer():
    until = datetime(2026, 12, 8)
    assert not R.may_finalise(until - timedelta(seconds=1), until, 0)
    assert R.may_finalise(until, until, 0)
    assert not R.may_finalise(until + timedelta(days=3), until, 1)
    assert not R.may_finalise(until, None, 0)


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)),
       st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=60)))
def test_the_reminder_falls_inside_the_vote(opened, span):
    at = R.remind_at(opened, opened + span)
    assert opened < at < opened + span
    assert at >= opened + span - timedelta(hours=24)
