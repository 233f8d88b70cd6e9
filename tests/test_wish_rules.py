"""The micro-wish's pure rules: every status x action x role, action sequences, limits, time and hours."""
from __future__ import annotations

from datetime import datetime, timedelta
from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers import wish_rules as rules
from handlers.wish_rules import (ACTIONS, CLAIMER, FINAL, MEMBER, NEW, OPEN, OWNER, RESIDENT, REVIEWER, ROLES,
                                 STATUSES, SYSTEM, Actor, Limits, NotAllowed)

# The diagram in handlers/wish_rules.py, written out independently of its table: (status, action) -> (next, roles)
DIAGRAM = {
    (NEW, "submit"): ("submitted", {OWNER}),
    ("submitted", "withdraw"): ("withdrawn", {OWNER}),
    ("approved", "withdraw"): ("withdrawn", {OWNER}),
    ("submitted", "approve"): ("approved", {REVIEWER}),
    ("submitted", "reject"): ("rejected", {REVIEWER}),
    ("submitted", "edit"): ("submitted", {REVIEWER}),
    ("approved", "edit"): ("approved", {REVIEWER}),
    ("submitted", "remind"): ("submitted", {SYSTEM}),
    ("submitted", "escalate"): ("submitted", {SYSTEM}),
    ("approved", "claim"): ("claimed", {MEMBER}),
    ("claimed", "join"): ("claimed", {MEMBER}),
    ("claimed", "message"): ("claimed", {OWNER, CLAIMER}),
    ("fulfilled", "message"): ("fulfilled", {OWNER, CLAIMER}),
    ("claimed", "share_phone"): ("claimed", {OWNER}),
    ("fulfilled", "share_phone"): ("fulfilled", {OWNER}),
    ("claimed", "fulfil"): ("fulfilled", {CLAIMER}),
    ("claimed", "remind"): ("claimed", {SYSTEM}),
    ("claimed", "release"): ("approved", {SYSTEM, REVIEWER}),
    ("fulfilled", "confirm"): ("closed", {OWNER}),
    ("fulfilled", "dispute"): ("claimed", {OWNER}),
    ("fulfilled", "remind"): ("fulfilled", {SYSTEM}),
    ("fulfilled", "expire"): ("closed", {SYSTEM}),
}


@pytest.mark.parametrize(("status", "action", "role"), list(product((NEW, *STATUSES), ACTIONS, ROLES)))
def test_every_status_action_role_follows_the_diagram(status, action, role):
    expected = DIAGRAM.get((status, action))
    if expected and role in expected[1]:
        assert rules.allowed(status, action, {role})
        assert rules.next_status(status, action, {role}) == expected[0]
        return
    assert not rules.allowed(status, action, {role})
    with pytest.raises(NotAllowed) as caught:
        rules.next_status(status, action, {role})
    # the reason tells "nobody may, now" from "someone may, but not you"
    assert caught.value.reason == ("role" if expected else "status")
    assert (caught.value.status, caught.value.action, caught.value.roles) == (status, action, {role})


def test_the_diagram_uses_known_words_and_every_action():
    assert {s for s, _ in DIAGRAM} - {NEW} | {n for n, _ in DIAGRAM.values()} <= set(STATUSES)
    assert {a for _, a in DIAGRAM} == set(ACTIONS)
    assert set().union(*(r for _, r in DIAGRAM.values())) == set(ROLES) - {RESIDENT}


def test_a_person_with_several_roles_may_do_what_any_of_them_may():
    assert rules.next_status("approved", "claim", {RESIDENT, MEMBER}) == "claimed"
    assert rules.next_status("submitted", "approve", {MEMBER, REVIEWER}) == "approved"
    assert not rules.allowed("approved", "claim", set())


def test_final_statuses_are_final_and_every_status_is_reachable():
    for status in FINAL:
        assert not any(rules.allowed(status, a, ROLES) for a in ACTIONS)
    reached, frontier = {NEW}, [NEW]
    while frontier:
        status = frontier.pop()
        for action in ACTIONS:
            if not rules.allowed(status, action, ROLES):
                continue
            if (nxt := rules.next_status(status, action, ROLES)) not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert reached == {NEW, *STATUSES}
    assert OPEN | FINAL == set(STATUSES) and not OPEN & FINAL


def test_only_the_owner_withdraws_and_only_before_a_claim():
    assert {s for s in STATUSES if rules.allowed(s, "withdraw", ROLES)} == {"submitted", "approved"}
    assert all(rules.who_may(s, "withdraw") <= {OWNER} for s in STATUSES)


def test_a_resident_never_claims_joins_fulfils_or_reviews():
    for status, action in product(STATUSES, ("claim", "join", "fulfil", "approve", "reject", "edit", "release")):
        assert not rules.allowed(status, action, {OWNER, RESIDENT})


ACTOR = "o_actor"


@pytest.mark.parametrize(("actor", "owner", "community", "claimers", "expected"), [
    (None, "o_owner", 1, (), {SYSTEM}),
    (Actor(ACTOR), ACTOR, 1, (), {OWNER}),
    (Actor(ACTOR), "o_owner", 1, (), {RESIDENT}),
    (Actor(ACTOR, party_member=True, community_id=1), "o_owner", 1, (), {MEMBER}),
    (Actor(ACTOR, party_member=True, community_id=2), "o_owner", 1, (), {RESIDENT}),  # another community's wall
    (Actor(ACTOR, party_member=True), "o_owner", 1, (), {RESIDENT}),  # not registered (报到) anywhere
    (Actor(ACTOR, party_member=True, community_id=1), "o_owner", 1, (ACTOR,), {CLAIMER}),
    (Actor(ACTOR, party_member=True, community_id=1), ACTOR, 1, (), {OWNER}),  # never claims their own wish
    (Actor(ACTOR, reviewer=True), "o_owner", 1, (), {REVIEWER}),
    (Actor(ACTOR, reviewer=True, party_member=True, community_id=1), "o_owner", 1, (), {REVIEWER, MEMBER}),
    (Actor(ACTOR, party_member=True, community_id=None), "o_owner", None, (), {RESIDENT}),
])
def test_roles_of(actor, owner, community, claimers, expected):
    assert rules.roles_of(actor, owner, community, claimers) == expected


# -- sequences of actions ---------------------------------------------------------------------------------------
steps = st.lists(st.tuples(st.sampled_from(ACTIONS), st.sampled_from(ROLES)), max_size=40)


def run(sequence):
    """Apply the allowed steps from NEW; return the statuses passed and the steps taken."""
    status, path, taken = NEW, [NEW], []
    for action, role in sequence:
        if rules.allowed(status, action, {role}):
            status = rules.next_status(status, action, {role})
            path.append(status)
            taken.append((action, role))
    return path, taken


@given(steps)
def test_sequences_stay_within_the_statuses_and_stop_at_a_final_one(sequence):
    path, taken = run(sequence)
    assert set(path) <= {NEW, *STATUSES}
    for i, status in enumerate(path):
        if status in FINAL:
            assert path[i:] == [status] * (len(path) - i)


@given(steps)
def test_a_closed_wish_was_claimed_and_fulfilled_and_closed_by_its_owner_or_the_clock(sequence):
    path, taken = run(sequence)
    if "closed" in path:
        assert path.index("claimed") < path.index("fulfilled") < path.index("closed")
        assert taken[-1] in (("confirm", OWNER), ("expire", SYSTEM))


@given(steps)
def test_a_withdrawn_wish_was_not_claimed_at_that_moment(sequence):
    path, taken = run(sequence)
    for i, (action, _) in enumerate(taken):
        if action == "withdraw":
            assert path[i] in ("submitted", "approved")


@given(steps)
def test_fulfilled_only_by_a_claimer_and_the_wall_only_after_review(sequence):
    path, taken = run(sequence)
    for i, (action, role) in enumerate(taken):
        if path[i + 1] == "fulfilled" and path[i] != "fulfilled":
            assert (action, role) == ("fulfil", CLAIMER)
        if path[i + 1] == "approved" and path[i] == "submitted":
            assert role == REVIEWER


@given(steps)
def test_a_disputed_wish_goes_back_to_the_claimer(sequence):
    path, taken = run(sequence)
    for i, (action, _) in enumerate(taken):
        if action == "dispute":
            assert (path[i], path[i + 1]) == ("fulfilled", "claimed")


# -- limits and time ------------------------------------------------------------------------------------------------
@given(st.integers(0, 20), st.integers(1, 10))
def test_at_most_max_open_wishes(open_count, max_open):
    assert rules.may_open_another(open_count, Limits(max_open=max_open)) == (open_count < max_open)


def test_default_limits_are_the_documented_ones():
    assert Limits() == Limits(max_open=3, review_hours=72, review_lead_fraction=0.2, stale_days=7, release_days=3,
                              confirm_days=7, max_group=5)


moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1))
spans = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40))


@given(moments, spans)
def test_claim_stage_by_idle_time(progress_at, idle):
    stage = rules.claim_stage(progress_at + idle, progress_at, Limits())
    assert stage == ("release" if idle >= timedelta(days=10) else "remind" if idle >= timedelta(days=7) else "fresh")


@given(moments, spans, spans)
def test_stages_never_go_back_as_time_passes(start, a, b):
    early, late = sorted((a, b))
    order = {"fresh": 0, "waiting": 0, "remind": 1, "release": 2, "expire": 2, "escalate": 2}
    limits = Limits()
    assert order[rules.claim_stage(start + early, start, limits)] <= order[
        rules.claim_stage(start + late, start, limits)]
    assert order[rules.confirm_stage(start + early, start, limits)] <= order[
        rules.confirm_stage(start + late, start, limits)]
    due = rules.review_due(start, limits)
    assert order[rules.review_stage(start + early, start, due, limits)] <= order[
        rules.review_stage(start + late, start, due, limits)]


@given(moments, spans)
def test_review_is_reminded_before_its_deadline_and_escalated_after(submitted_at, waited):
    limits = Limits()
    due = rules.review_due(submitted_at, limits)
    assert due == submitted_at + timedelta(hours=72)
    stage = rules.review_stage(submitted_at + waited, submitted_at, due, limits)
    now = submitted_at + waited
    if now > due:
        assert stage == "escalate"
    elif now >= due - timedelta(hours=72 * 0.2):
        assert stage == "remind"
    else:
        assert stage == "waiting"


@given(moments, spans)
def test_confirm_stage(fulfilled_at, waited):
    stage = rules.confirm_stage(fulfilled_at + waited, fulfilled_at, Limits(confirm_days=7))
    assert stage == ("expire" if waited >= timedelta(days=7) else "remind" if waited >= timedelta(days=3.5)
                     else "waiting")


@given(st.booleans(), st.integers(0, 10), st.integers(1, 10))
def test_join_only_a_group_claim_with_room(group, members, max_group):
    assert rules.may_join(group, members, Limits(max_group=max_group)) == (group and members < max_group)


# -- hours -------------------------------------------------------------------------------------------------------------
def test_two_hours_for_a_group_of_three_is_forty_minutes_each():
    assert rules.share_minutes(120, 3) == [40, 40, 40]
    assert rules.share_minutes(100, 3) == [34, 33, 33]
    assert rules.share_minutes(90, 1) == [90]
    assert rules.share_minutes(90, 0) == []
    assert rules.hours(40) == 0.67 and rules.hours(120) == 2.0


@given(st.integers(0, rules.MAX_MINUTES), st.integers(1, 20))
def test_shares_add_up_to_what_was_reported_and_differ_by_at_most_a_minute(total, members):
    shares = rules.share_minutes(total, members)
    assert len(shares) == members and sum(shares) == total
    assert max(shares) - min(shares) <= 1 and shares == sorted(shares, reverse=True)


@pytest.mark.parametrize(("text", "minutes", "rest"), [
    ("已经送到家了 用时2小时", 120, "已经送到家了"),
    ("修好了水龙头，用时1.5小时", 90, "修好了水龙头"),
    ("用时两个半小时 陪老人看病", 150, "陪老人看病"),
    ("用了90分钟", 90, ""),
    ("2小时30分钟", 150, ""),
    ("半小时", 30, ""),
    ("用时十二小时", 720, ""),
    ("三小时半", 210, ""),
    ("2h 搬家", 120, "搬家"),
    ("送了一袋米", None, "送了一袋米"),
    ("用时0小时", None, "用时0小时"),
    ("用时200小时", None, "用时200小时"),
    ("", None, ""),
])
def test_parse_duration(text, minutes, rest):
    assert rules.parse_duration(text) == (minutes, rest)


@given(st.integers(1, 99), st.sampled_from(["用时{}小时", "{}小时", "用了{}个小时", "共{}h"]), st.text(
    alphabet="送米修好了陪看病", max_size=8))
def test_parse_duration_reads_any_whole_hours_in_digits(n, form, story):
    assert rules.parse_duration(f"{story} {form.format(n)}") == (n * 60, story)


CN = {1: "一", 2: "两", 3: "三", 4: "四", 5: "五", 6: "六", 7: "七", 8: "八", 9: "九", 10: "十", 12: "十二", 20: "二十",
      25: "二十五"}


@given(st.sampled_from(sorted(CN)), st.booleans())
def test_parse_duration_reads_chinese_numerals(n, half):
    text = f"用时{CN[n]}个{'半' if half else ''}小时"
    assert rules.parse_duration(text) == (n * 60 + (30 if half else 0), "")
