"""The ticket's pure rules: every (status, action) pair, and properties of the time limits."""
from __future__ import annotations

from datetime import datetime, timedelta
from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers import ticket_rules
from handlers.ticket_rules import ACTIONS, OPEN, STATUSES, NotAllowed

# The diagram in handlers/ticket_rules.py, written out independently of its table.
DIAGRAM = {
    ("submitted", "dispatch"): "dispatched",
    ("submitted", "reassign"): "dispatched",
    ("dispatched", "accept"): "accepted",
    ("dispatched", "reassign"): "dispatched",
    ("dispatched", "return"): "dispatched",
    ("accepted", "note"): "accepted",
    ("accepted", "resolve"): "resolved",
    ("accepted", "reassign"): "dispatched",
    ("accepted", "return"): "dispatched",
    ("resolved", "rate_good"): "closed",
    ("resolved", "rate_bad"): "reopened",
    ("resolved", "expire"): "closed",
    ("reopened", "accept"): "reopened",
    ("reopened", "note"): "reopened",
    ("reopened", "resolve"): "resolved",
    ("reopened", "reassign"): "dispatched",
}


@pytest.mark.parametrize(("status", "action"), list(product(STATUSES, ACTIONS)))
def test_every_status_action_pair_follows_the_diagram(status, action):
    if (status, action) in DIAGRAM:
        assert ticket_rules.allowed(status, action)
        assert ticket_rules.next_status(status, action) == DIAGRAM[status, action]
    else:
        assert not ticket_rules.allowed(status, action)
        with pytest.raises(NotAllowed) as caught:
            ticket_rules.next_status(status, action)
        assert (caught.value.status, caught.value.action) == (status, action)


def test_the_diagram_uses_only_known_statuses_and_actions():
    assert {s for s, _ in DIAGRAM} | set(DIAGRAM.values()) <= set(STATUSES)
    assert {a for _, a in DIAGRAM} == set(ACTIONS)


def test_unknown_words_are_not_allowed():
    for status, action in (("lost", "accept"), ("accepted", "delete"), ("", "")):
        with pytest.raises(NotAllowed):
            ticket_rules.next_status(status, action)


def test_closed_is_final_and_every_status_is_reachable():
    assert not any(ticket_rules.allowed("closed", a) for a in ACTIONS)
    reached, frontier = {"submitted"}, ["submitted"]
    while frontier:
        status = frontier.pop()
        for action in ACTIONS:
            if ticket_rules.allowed(status, action) and (nxt := ticket_rules.next_status(status, action)) not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert reached == set(STATUSES)


def test_open_means_someone_still_owes_the_resident_an_answer():
    assert OPEN == {"submitted", "dispatched", "accepted", "reopened"}
    # from every open status the ticket can still get to resolved
    for status in OPEN:
        assert any(ticket_rules.allowed(status, a) for a in ("resolve", "accept", "dispatch", "reassign"))


def test_only_good_ratings_count_as_satisfied():
    assert [ticket_rules.satisfied(r) for r in (None, 1, 2, 3, 0, 4)] == [False, True, True, False, False, False]


moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1))
hours = st.floats(min_value=0, max_value=24 * 60, allow_nan=False)
spans = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60))
fractions = st.floats(min_value=0, max_value=0.9, allow_nan=False)


@given(moments, hours, hours)
def test_deadlines_add_the_hours_and_keep_their_order(start, response_h, resolve_h):
    response_due, resolve_due = ticket_rules.deadlines(start, response_h, resolve_h)
    assert response_due == start + timedelta(hours=response_h)
    assert resolve_due == start + timedelta(hours=resolve_h)
    assert (response_due <= resolve_due) == (timedelta(hours=response_h) <= timedelta(hours=resolve_h))


@given(moments, hours, hours)
def test_deadlines_are_monotone_in_the_hours(start, a, b):
    low, high = sorted((a, b))
    assert ticket_rules.deadlines(start, low, low)[0] <= ticket_rules.deadlines(start, high, high)[0]


@given(moments, spans, fractions)
def test_remind_at_is_strictly_before_due_and_after_start(start, window, fraction):
    due = start + window
    at = ticket_rules.remind_at(start, due, fraction)
    assert at <= due - timedelta(minutes=1) < due
    if window > timedelta(minutes=2):
        assert start < at


@given(moments, spans, spans, fractions)
def test_remind_at_moves_with_the_deadline(start, a, b, fraction):
    early, late = sorted((a, b))
    assert ticket_rules.remind_at(start, start + early, fraction) <= ticket_rules.remind_at(start, start + late, fraction)


@given(moments, spans, fractions, fractions)
def test_a_larger_lead_reminds_earlier(start, window, f1, f2):
    small, large = sorted((f1, f2))
    due = start + window
    assert ticket_rules.remind_at(start, due, large) <= ticket_rules.remind_at(start, due, small)


@given(moments, moments, spans)
def test_escalation_level_by_time(due, now, second_after):
    level = ticket_rules.escalation_level(now, due, second_after)
    if now <= due:
        assert level == 0
    elif now <= due + second_after:
        assert level == 1
    else:
        assert level == 2


@given(moments, moments, moments, spans)
def test_escalation_level_never_goes_down(due, t1, t2, second_after):
    earlier, later = sorted((t1, t2))
    assert ticket_rules.escalation_level(earlier, due, second_after) <= ticket_rules.escalation_level(
        later, due, second_after)
