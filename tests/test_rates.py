"""The three rates and 按期办结率: exact on hand-made cases, bounded and consistent on generated ones."""
from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, strategies as st

from handlers.rates import Facts, percent, rates

T0 = datetime(2026, 11, 1, 8)
NOW = datetime(2026, 12, 1)


def facts(accepted_h=None, resolved_h=None, solved=None, rating=None, response_h=24, resolve_h=168,
          dispatched=True) -> Facts:
    at = lambda h: None if h is None else T0 + timedelta(hours=h)  # noqa: E731
    return Facts(T0 if dispatched else None, at(accepted_h), at(response_h), at(resolved_h), at(resolve_h),
                 solved, rating)


def test_hand_made_month():
    r = rates([
        facts(accepted_h=2, resolved_h=20, solved=True, rating=1),  # all good
        facts(accepted_h=30, resolved_h=200, solved=False, rating=3),  # late twice, unhappy
        facts(accepted_h=5, resolved_h=100, solved=True, rating=2),  # 基本满意 counts as satisfied
        facts(accepted_h=1),  # still open, deadline passed by NOW: due, not on time
        facts(dispatched=False),  # never dispatched: not counted anywhere
    ], NOW)
    assert (r.dispatched, r.responded, r.rated, r.solved, r.satisfied, r.due, r.on_time) == (4, 3, 3, 2, 2, 4, 2)
    assert r.response_rate == 0.75 and r.on_time_rate == 0.5
    assert abs(r.resolution_rate - 2 / 3) < 1e-9 and abs(r.satisfaction_rate - 2 / 3) < 1e-9


def test_unrated_tickets_never_count_as_satisfied():
    r = rates([facts(accepted_h=1, resolved_h=2, solved=None, rating=None)], NOW)
    assert r.rated == 0 and r.satisfaction_rate is None and r.resolution_rate is None
    assert percent(r.satisfaction_rate) == "—" and percent(r.response_rate) == "100.0%"


def test_nothing_to_count_is_not_zero_percent():
    r = rates([], NOW)
    assert all(x is None for x in (r.response_rate, r.resolution_rate, r.satisfaction_rate, r.on_time_rate))


hours = st.one_of(st.none(), st.integers(min_value=0, max_value=400))
ticket = st.builds(facts, accepted_h=hours, resolved_h=hours, solved=st.one_of(st.none(), st.booleans()),
                   rating=st.one_of(st.none(), st.sampled_from([1, 2, 3])), response_h=st.integers(1, 48),
                   resolve_h=st.integers(24, 360), dispatched=st.booleans())


@given(st.lists(ticket, max_size=30))
def test_rates_are_fractions_of_their_own_denominators(tickets):
    r = rates(tickets, NOW)
    assert r.responded <= r.dispatched and r.solved <= r.rated and r.satisfied <= r.rated
    assert r.on_time <= r.due <= r.dispatched and r.rated <= r.dispatched
    for value in (r.response_rate, r.resolution_rate, r.satisfaction_rate, r.on_time_rate):
        assert value is None or 0 <= value <= 1


@given(st.lists(ticket, max_size=20), st.lists(ticket, max_size=20))
def test_counts_add_up_across_groups(a, b):
    ra, rb, rab = rates(a, NOW), rates(b, NOW), rates(a + b, NOW)
    assert tuple(x + y for x, y in zip(vars(ra).values(), vars(rb).values())) == tuple(vars(rab).values())
