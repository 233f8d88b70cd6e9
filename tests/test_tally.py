"""The tally: exact art. 278 boundaries, exhaustive small rolls against an independent reference, and
properties (any order of ballots and replacements gives one result; the budget rule)."""
from __future__ import annotations

import itertools
import time
from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.vote_bench import synthetic_vote
from handlers import tally as T
from handlers.tally import Ballot, Part, Threshold

ORDINARY, MAJOR = T.rule("art278-ordinary"), T.rule("art278-major")


@pytest.fixture(scope="session", autouse=True)
def _warm_nlp():
    """Counting needs no classifier."""


def reference(rule_name: str, parts: list[Part], final: dict) -> tuple[bool, bool]:
    """(quorum_met, passed) straight from the law's words, in integer arithmetic (cents and people), written
    independently of handlers.tally: participation 三分之二以上 of area and of owners; approval 过半数 (ordinary)
    or 四分之三以上 (major) of the participating area and owners."""
    cents: dict = {}
    for p in parts:
        cents[p.voter] = cents.get(p.voter, 0) + int(p.area * 100)
    total_a, total_h = sum(cents.values()), len(cents)
    part_a = sum(cents[v] for v in final)
    part_h = len(final)
    yes_a = sum(cents[v] for v, choice in final.items() if choice == 1)
    yes_h = sum(1 for choice in final.values() if choice == 1)
    quorum = total_h > 0 and total_a > 0 and 3 * part_a >= 2 * total_a and 3 * part_h >= 2 * total_h
    if rule_name == "art278-ordinary":
        approved = 2 * yes_a > part_a and 2 * yes_h > part_h
    else:
        approved = 4 * yes_a >= 3 * part_a and 4 * yes_h >= 3 * part_h
    return quorum, quorum and part_h > 0 and approved


# -- thresholds ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "share", "inclusive"), [
    (">1/2", Fraction(1, 2), False), (">=2/3", Fraction(2, 3), True), ("2/3", Fraction(2, 3), True),
    ("≥3/4", Fraction(3, 4), True), ("50%", Fraction(1, 2), True), (">50%", Fraction(1, 2), False),
    ("0", Fraction(0), True), (" > 1 / 2 ", Fraction(1, 2), False), ("1", Fraction(1), True)])
def test_threshold_spellings(text, share, inclusive):
    t = Threshold.parse(text)
    assert (t.share, t.inclusive) == (share, inclusive)
    assert Threshold.parse(str(t)) == t


@pytest.mark.parametrize("text", ["", "half", "3/2", "1/0", "-1/2", "<1/2", "150%", "0.5"])
def test_threshold_nonsense_is_refused(text):
    with pytest.raises(ValueError):
        Threshold.parse(text)


def test_yishang_includes_the_number_and_guoban_does_not():
    """Civil Code art. 1259: 以上 includes, 过半数/超过 do not."""
    assert T.TWO_THIRDS.met(2, 3) and not T.TWO_THIRDS.met(D("199.99"), 300)
    assert not T.MORE_THAN_HALF.met(1, 2) and T.MORE_THAN_HALF.met(D("50.01"), 100)
    assert T.THREE_QUARTERS.met(3, 4) and not T.THREE_QUARTERS.met(D("74.99"), 100)
    assert not T.NO_QUORUM.met(0, 0)  # an empty roll decides nothing


def test_art278_thresholds_are_the_laws():
    assert (ORDINARY.quorum, ORDINARY.approval, ORDINARY.by_area) == (T.TWO_THIRDS, T.MORE_THAN_HALF, True)
    assert (MAJOR.quorum, MAJOR.approval) == (T.TWO_THIRDS, T.THREE_QUARTERS)
    with pytest.raises(ValueError):
        T.rule("art278-major", quorum="1/2")
    with pytest.raises(ValueError):
        T.rule("art278-ordinary", approval=">1/3")
    with pytest.raises(ValueError):
        T.rule("majority")
    simple = T.rule("simple", quorum="1/2", approval=">=2/3")
    assert (simple.quorum, simple.approval, simple.by_area) == (Threshold(Fraction(1, 2), True),
                                                                 Threshold(Fraction(2, 3), True), False)
    assert T.rule("simple").quorum == T.NO_QUORUM and T.rule("simple").approval == T.MORE_THAN_HALF


# -- exact boundaries --------------------------------------------------------------------------------------------------
def roll(*areas: str) -> list[Part]:
    return [Part(f"v{i}", D(a)) for i, a in enumerate(areas)]


def ballots(**choices: int) -> list[Ballot]:
    return [Ballot(v, c, 0) for v, c in choices.items()]


def test_two_thirds_exactly_takes_part_one_cent_less_does_not():
    parts = roll("100.00", "100.00", "100.00")
    exactly = T.tally(ORDINARY, 3, parts, ballots(v0=1, v1=1))  # 200 of 300 m², 2 of 3 owners
    assert exactly.quorum_met and exactly.passed
    short = T.tally(ORDINARY, 3, roll("100.00", "99.99", "100.01"), ballots(v0=1, v1=1))  # 199.99 of 300
    assert not short.quorum_met and not short.passed
    assert exactly.shares()["participation_area"] == Fraction(2, 3)


def test_two_thirds_of_the_area_is_not_enough_without_two_thirds_of_the_owners():
    parts = roll("250", "25", "25")  # one large owner holds 5/6 of the area
    alone = T.tally(ORDINARY, 3, parts, ballots(v0=1))
    assert alone.participating_area == D(250) and not alone.quorum_met
    many = T.tally(ORDINARY, 3, roll("10", "10", "280"), ballots(v0=1, v1=1))  # 2/3 of owners, 1/15 of area
    assert not many.quorum_met


def test_half_exactly_does_not_pass_an_ordinary_matter():
    parts = roll("100", "100", "100", "100")
    half = T.tally(ORDINARY, 3, parts, ballots(v0=1, v1=1, v2=2, v3=3))
    assert half.quorum_met and (half.approving_area, half.participating_area) == (D(200), D(400))
    assert not half.passed
    more = T.tally(ORDINARY, 3, roll("100.01", "100", "100", "99.99"), ballots(v0=1, v1=1, v2=2, v3=2))
    assert not more.passed  # more than half the area, but exactly half the owners
    both = T.tally(ORDINARY, 3, parts, ballots(v0=1, v1=1, v2=1, v3=2))
    assert both.passed


def test_three_quarters_exactly_passes_a_major_matter():
    parts = roll("100", "100", "100", "100")
    exactly = T.tally(MAJOR, 3, parts, ballots(v0=1, v1=1, v2=1, v3=2))
    assert exactly.passed and exactly.shares()["approval_area"] == Fraction(3, 4)
    short = T.tally(MAJOR, 3, roll("100", "100", "99.99", "100.01"), ballots(v0=1, v1=1, v2=1, v3=2))
    assert not short.passed  # 3/4 of owners but 299.99 of 400 m²


def test_abstentions_take_part_and_count_against_approval():
    parts = roll("100", "100", "100")
    r = T.tally(ORDINARY, 3, parts, ballots(v0=1, v1=3, v2=3))
    assert r.quorum_met and r.participating_headcount == 3 and not r.passed
    assert r.counts == (1, 0, 2)


def test_the_approval_base_is_the_participants_not_the_roll():
    parts = roll(*["100"] * 9)
    r = T.tally(ORDINARY, 3, parts, ballots(v0=1, v1=1, v2=1, v3=1, v4=2, v5=3))  # 6 of 9 vote, 4 approve
    assert r.quorum_met and r.passed and r.approving_headcount == 4


# -- exhaustive small rolls ------------------------------------------------------------------------------------------
SMALL_ROLLS = [
    [Part("a", D("60")), Part("b", D("60")), Part("c", D("60"))],
    [Part("a", D("50.5")), Part("a", D("49.5")), Part("b", D("100")), Part("c", D("33.33")), Part("d", D("66.67"))],
    [Part("dev", D("10")), Part("dev", D("10")), Part("dev", D("10")), Part("x", D("90")), Part("y", D("1"))],
    [Part("a", D("75")), Part("b", D("25")), Part("c", D("25")), Part("d", D("25"))],
]


@pytest.mark.parametrize("rule_name", ["art278-ordinary", "art278-major"])
@pytest.mark.parametrize("parts", SMALL_ROLLS)
def test_every_way_a_small_roll_can_vote_matches_the_law(rule_name, parts):
    the_rule = T.rule(rule_name)
    voters = list(dict.fromkeys(p.voter for p in parts))
    for choices in itertools.product((None, 1, 2, 3), repeat=len(voters)):
        final = {v: c for v, c in zip(voters, choices) if c is not None}
        result = T.tally(the_rule, 3, parts, [Ballot(v, c, 0) for v, c in final.items()])
        assert (result.quorum_met, result.passed) == reference(rule_name, parts, final), final
        assert result.ballots == result.participating_headcount == len(final)
        assert sum(result.counts) == len(final) and sum(result.option_areas) == result.participating_area


# -- properties --------------------------------------------------------------------------------------------------------
areas = st.integers(min_value=1, max_value=30000).map(lambda cents: D(cents) / 100)


@st.composite
def votes(draw, rule_names=("art278-ordinary", "art278-major", "simple")):
    """A roll (voters with one or more parts), and a stream of ballots with replacements in cast order."""
    n = draw(st.integers(min_value=1, max_value=12))
    parts = [Part(f"v{i}", a, building=draw(st.sampled_from("AB")))
             for i in range(n) for a in draw(st.lists(areas, min_size=1, max_size=3))]
    stream = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 3)), max_size=40))
    cast = [Ballot(f"v{v}", c, t, receipt=f"r{t:03d}") for t, (v, c) in enumerate(stream)]
    return draw(st.sampled_from(rule_names)), parts, cast


@given(votes(), st.randoms(use_true_random=False))
def test_any_order_of_ballots_and_replacements_gives_one_result(case, rnd):
    rule_name, parts, cast = case
    the_rule = T.rule(rule_name)
    expected = T.tally(the_rule, 3, parts, cast)
    shuffled = cast[:]
    rnd.shuffle(shuffled)
    parts_shuffled = parts[:]
    rnd.shuffle(parts_shuffled)
    assert T.tally(the_rule, 3, parts_shuffled, shuffled) == expected
    # only each voter's last ballot matters: the replaced ones change nothing
    assert T.tally(the_rule, 3, parts, list(T.latest(cast).values())) == expected


@given(votes(("art278-ordinary", "art278-major")))
def test_random_rolls_match_the_reference(case):
    rule_name, parts, cast = case
    final = {v: b.choice for v, b in T.latest(cast).items()}
    r = T.tally(T.rule(rule_name), 3, parts, cast)
    assert (r.quorum_met, r.passed) == reference(rule_name, parts, final)


@given(votes(), st.data())
def test_one_more_approval_never_turns_a_pass_into_a_failure(case, data):
    rule_name, parts, cast = case
    the_rule = T.rule(rule_name)
    before = T.tally(the_rule, 3, parts, cast)
    voter = data.draw(st.sampled_from(sorted({p.voter for p in parts})))
    after = T.tally(the_rule, 3, parts, cast + [Ballot(voter, 1, 10**6, "z")])
    assert after.quorum_met >= before.quorum_met
    assert after.passed >= before.passed


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3), st.integers(0, 5), st.sampled_from("xyz")),
                max_size=20))
def test_latest_is_the_greatest_time_then_receipt(stream):
    cast = [Ballot(f"v{v}", c, t, r) for v, c, t, r in stream]
    last = T.latest(cast)
    for voter, b in last.items():
        mine = [x for x in cast if x.voter == voter]
        assert (b.at, b.receipt) == max((x.at, x.receipt) for x in mine)
    assert set(last) == {b.voter for b in cast}


def test_a_later_ballot_replaces_an_earlier_one_for_co_owners_too():
    parts = [Part("flat-501", D("90"))]  # 张 and 王 co-own it: one voter
    cast = [Ballot("flat-501", 2, 2, "wang"), Ballot("flat-501", 1, 1, "zhang")]
    r = T.tally(ORDINARY, 3, parts, cast)
    assert r.counts == (0, 1, 0) and r.ballots == 1


def test_ballots_off_the_roll_or_out_of_range_are_refused():
    with pytest.raises(ValueError):
        T.tally(ORDINARY, 3, roll("10"), [Ballot("stranger", 1, 0)])
    with pytest.raises(ValueError):
        T.tally(ORDINARY, 3, roll("10"), [Ballot("v0", 4, 0)])
    with pytest.raises(ValueError):
        T.tally(ORDINARY, 0, roll("10"), [])


def test_an_empty_roll_or_no_ballots_decides_nothing():
    assert not T.tally(ORDINARY, 3, [], []).quorum_met
    r = T.tally(T.rule("simple"), 3, roll("10"), [])
    assert (r.quorum_met, r.passed, r.winner) == (False, False, None)


def test_simple_rule_counts_heads_not_area():
    parts = roll("500", "1", "1")
    r = T.tally(T.rule("simple", quorum="2/3"), 3, parts, ballots(v1=1, v2=1))
    assert r.quorum_met and r.passed and r.winner == 1
    r = T.tally(T.rule("simple"), 3, parts, ballots(v0=1, v1=2))
    assert not r.passed and r.winner is None  # a tie: 1 of 2 is not more than half


# -- art. 9: who is one voter ----------------------------------------------------------------------------------------
def test_one_owner_of_several_flats_is_one_voter():
    voters = T.persons([("101", "zhang"), ("102", "zhang"), ("201", "li")])
    assert voters == {frozenset({"zhang"}): ["101", "102"], frozenset({"li"}): ["201"]}


def test_the_developers_unsold_flats_are_one_voter():
    voters = T.persons([(f"{n}", "developer") for n in range(101, 111)] + [("201", "wang")])
    assert len(voters) == 2 and len(voters[frozenset({"developer"})]) == 10


def test_co_owners_are_one_voter_and_overlapping_sets_are_not_merged():
    voters = T.persons([("1", "A"), ("2", "A"), ("2", "B"), ("3", "B"), ("4", "B"), ("4", "A")])
    assert voters == {frozenset("A"): ["1"], frozenset("AB"): ["2", "4"], frozenset("B"): ["3"]}


@given(st.lists(st.tuples(st.integers(0, 8), st.sampled_from("ABCD")), max_size=30), st.randoms())
def test_persons_partition_the_flats_whatever_the_line_order(lines, rnd):
    voters = T.persons(lines)
    flats = [f for fs in voters.values() for f in fs]
    assert sorted(flats) == sorted({f for f, _ in lines})  # every flat in exactly one voter
    shuffled = lines[:]
    rnd.shuffle(shuffled)
    assert {k: sorted(v) for k, v in T.persons(shuffled).items()} == {k: sorted(v) for k, v in voters.items()}
    for owners, fs in voters.items():
        for f in fs:
            assert {o for g, o in lines if g == f} == owners


# -- participation while running ---------------------------------------------------------------------------------------
@given(st.integers(0, 60), st.integers(1, 60), st.sampled_from([T.TWO_THIRDS, T.MORE_THAN_HALF, T.THREE_QUARTERS]))
def test_the_shortfall_is_the_least_that_meets_the_threshold(part, whole, threshold):
    part = min(part, whole)
    short = T.shortfall(threshold, part, whole, 1)
    assert threshold.met(part + short, whole)
    assert short == 0 or not threshold.met(part + short - 1, whole)


@given(areas, areas, st.sampled_from([T.TWO_THIRDS, T.MORE_THAN_HALF]))
def test_the_area_shortfall_is_in_whole_cents_and_least(a, b, threshold):
    voted, total = min(a, b), a + b
    short = T.shortfall(threshold, voted, total, T.CENT)
    assert short == short.quantize(T.CENT)
    assert threshold.met(voted + short, total)
    assert short == 0 or not threshold.met(voted + short - T.CENT, total)


def test_participation_per_building_counts_a_voter_once_in_each_building():
    parts = [Part("dev", D("100"), "1栋"), Part("dev", D("100"), "2栋"), Part("a", D("100"), "1栋"),
             Part("b", D("100"), "2栋"), Part("c", D("100"), "2栋")]
    whole, buildings = T.participation(ORDINARY, parts, {"dev"})
    assert (whole.total_headcount, whole.voted_headcount, whole.voted_area) == (4, 1, D(200))
    assert (whole.headcount_short, whole.area_short) == (2, D("133.34"))
    assert (buildings["1栋"].total_headcount, buildings["1栋"].voted_headcount) == (2, 1)
    assert (buildings["2栋"].total_headcount, buildings["2栋"].headcount_short) == (3, 1)
    done, _ = T.participation(ORDINARY, parts, {"dev", "a", "b"})
    assert done.met


# -- 惠民项目资金 ------------------------------------------------------------------------------------------------------------
def test_budget_funds_by_support_skipping_what_does_not_fit():
    costs = [D("6000"), D("5000"), D("3000"), D("1000")]
    support = [9, 8, 7, 1]
    # 6000 funded; 5000 does not fit in 4000; 3000 does; 1000 does
    assert T.fund(D("10000"), costs, support) == (1, 3, 4)


def test_budget_ties_go_to_the_cheaper_then_the_first_listed():
    assert T.funding_order([D(5), D(3), D(3)], [4, 4, 4]) == [2, 3, 1]
    assert T.fund(D("6"), [D(5), D(3), D(3)], [4, 4, 4]) == (2, 3)


def test_budget_never_funds_an_unsupported_project():
    assert T.fund(D("100"), [D(1), D(1)], [0, 2]) == (2,)


def test_budget_ballots_must_fit_the_budget():
    costs = [D("600"), D("500")]
    assert T.picks_problem((1,), costs, D("1000")) is None
    assert T.picks_problem((), costs, D("1000")) is None  # takes part, funds nothing
    assert T.picks_problem((1, 2), costs, D("1000")) == "the projects chosen cost more than the budget"
    assert T.picks_problem((1, 1), costs, D("1000")) is not None
    assert T.picks_problem((3,), costs, D("1000")) is not None


budgets = st.tuples(
    st.integers(0, 2000).map(D),
    st.lists(st.integers(1, 1000).map(D), min_size=1, max_size=7),
).flatmap(lambda bc: st.tuples(st.just(bc[0]), st.just(bc[1]),
                               st.lists(st.integers(0, 12), min_size=len(bc[1]), max_size=len(bc[1]))))


@given(budgets)
def test_budget_properties(case):
    budget, costs, support = case
    funded = T.fund(budget, costs, support)
    spent = sum((costs[p - 1] for p in funded), D(0))
    assert spent <= budget
    assert all(support[p - 1] > 0 for p in funded)
    left = budget - spent
    order = T.funding_order(costs, support)
    for p in range(1, len(costs) + 1):
        if p in funded or support[p - 1] == 0:
            continue
        assert costs[p - 1] > left  # maximal: nothing supported and left out would still fit
        ahead = sum((costs[q - 1] for q in funded if order.index(q) < order.index(p)), D(0))
        assert costs[p - 1] > budget - ahead  # it did not fit when its turn came


@given(budgets, st.data())
def test_more_support_keeps_a_funded_project_funded(case, data):
    budget, costs, support = case
    funded = T.fund(budget, costs, support)
    if not funded:
        return
    p = data.draw(st.sampled_from(funded))
    more = list(support)
    more[p - 1] += data.draw(st.integers(1, 5))
    assert p in T.fund(budget, costs, more)


@given(budgets, st.data())
def test_budget_tally_is_independent_of_ballot_order(case, data):
    budget, costs, _ = case
    n = len(costs)
    households = data.draw(st.integers(1, 8))
    parts = [Part(f"h{i}", D(0)) for i in range(households)]
    cast = []
    for t in range(data.draw(st.integers(0, 15))):
        picks = tuple(data.draw(st.sets(st.integers(1, n))))
        if T.picks_problem(picks, costs, budget) is None:
            cast.append(Ballot(f"h{data.draw(st.integers(0, households - 1))}", 0, t, f"r{t}", picks))
    budget_rule = T.rule("budget")
    r = T.tally(budget_rule, 0, parts, cast, budget=budget, costs=costs)
    assert T.tally(budget_rule, 0, parts, list(reversed(cast)), budget=budget, costs=costs) == r
    assert r.funded_cost <= budget and r.funded == T.fund(budget, costs, list(r.counts))


# -- JSON and speed ----------------------------------------------------------------------------------------------------
@given(votes())
def test_the_json_result_reads_back(case):
    rule_name, parts, cast = case
    r = T.tally(T.rule(rule_name), 3, parts, cast)
    assert T.result_from_json(T.result_json(r, ["同意", "反对", "弃权"])) == r


def test_a_tally_of_100000_ballots_is_quick():
    n = 100_000
    parts, cast = synthetic_vote(n)
    start = time.perf_counter()
    r = T.tally(ORDINARY, 3, parts, cast)
    elapsed = time.perf_counter() - start
    assert r.ballots == n and r.total_headcount == n
    assert elapsed < 2.0, elapsed  # about 0.1 s on the project's machine
