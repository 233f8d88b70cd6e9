r"""Counting votes: pure rules, no I/O. Areas are exact decimals, every share an exact fraction.

Rules
-----
`simple`          quorum and approval shares of the voting units (households, residents or owners) by
                  headcount; configurable (default: no quorum, approval by more than half).
`art278-ordinary` Civil Code art. 278 para. 2, items 1-5 and 9: participation by owners holding at least
                  2/3 of the exclusive area AND at least 2/3 of the owners by headcount; approval by more
                  than half of the PARTICIPATING area AND more than half of the participating owners.
`art278-major`    items 6-8 (raising the maintenance fund, rebuilding, changing the use of common parts):
                  the same participation; approval by at least 3/4 of the participating area AND headcount.
`budget`          惠民项目资金 (participatory budgeting, as Decidim's budgets): see `fund` below.

"以上" includes the number, "过半数" and "超过" do not (Civil Code art. 1259): 2/3 exactly takes part, 1/2
exactly does not pass, 3/4 exactly passes. A `Threshold` says which: ">=2/3" (以上) or ">1/2" (过半数).
Option 1 is the motion in every rule (同意 in an art. 278 vote); approving means choosing option 1. Every
counted ballot takes part, 弃权 included: an abstention counts towards participation and against approval
(the approval base is the participating owners, art. 278 as amended in 2021). Nobody who did not vote is
counted as anything ("未投票视为同意" is not a rule here).

Who is one voter (headcount)
----------------------------
Headcount follows the Supreme People's Court interpretation on building ownership (法释〔2009〕7号, as
amended 2020), art. 9: one exclusive part (专有部分) counts as one person; but the developer's unsold
(or sold and not yet delivered) parts count as one person, and so do the parts of one buyer who holds more
than one. Area is each part's registered exclusive area (art. 8); the total is the sum over all parts.

`persons` turns the owners' register (one line per owner and flat) into voters:
- the flats held by the same owner, or by the same set of co-owners, are ONE voter, who counts once by
  headcount and with the sum of those flats' areas (the developer is one owner_id, so its unsold flats
  are one voter);
- co-owners of a flat are one voter: whichever of them casts, the voter's latest ballot counts;
- a flat held by a different set of people is a different voter, even when the sets overlap: A alone
  (flat 1) and A with B (flat 2) are two title holders, two voters. Merging overlapping sets would chain
  distinct people into one (A-B, B-C, ...) and undercount the headcount; art. 9 merges parts of "the same
  buyer", and a jointly bought flat has a different buyer than a flat bought alone.

One voter, one ballot. An owner of several flats therefore cannot vote one way for one flat and another way
for another: art. 278 counts owners (业主), each with the area of all their exclusive parts, and art. 9
makes that owner one person; a split ballot would make one person both approve and refuse. The owner's
latest ballot counts for all their flats (area) and once (headcount). (A paper form per flat with
different choices is resolved the same way: the latest one entered counts, for every flat of the voter.)

The roll (`Part` rows) is fixed when the vote opens; each ballot names its voter. A voter may replace the
ballot until the close: the ballot with the latest (at, receipt) counts, whatever order ballots arrive in.
"""
from __future__ import annotations

import math
import re
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

RULES = ("simple", "art278-ordinary", "art278-major", "budget")
AREA_RULES = frozenset({"art278-ordinary", "art278-major"})
CENT = Decimal("0.01")


# -- thresholds --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Threshold:
    """A share that must be reached: inclusive is 以上 (>=), otherwise 过半数/超过 (>)."""

    share: Fraction
    inclusive: bool

    def met(self, part: Fraction | int | Decimal, whole: Fraction | int | Decimal) -> bool:
        """part/whole reaches the share; nothing of nothing never does (an empty roll decides nothing)."""
        if whole <= 0:
            return False
        ratio = Fraction(part) / Fraction(whole)
        return ratio >= self.share if self.inclusive else ratio > self.share

    def needed(self, whole: Fraction | int | Decimal) -> Fraction:
        """The part at which an inclusive threshold is met; a strict one needs more than this."""
        return self.share * Fraction(whole)

    def __str__(self) -> str:
        return (">=" if self.inclusive else ">") + _fraction_text(self.share)

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """">1/2" (过半数), ">=2/3" or "2/3" (以上), "50%", ">50%", "0" (no quorum)."""
        m = re.fullmatch(r"\s*(>=|>|≥)?\s*(\d+)\s*(?:/\s*(\d+)|(%))?\s*", text or "")
        if not m:
            raise ValueError(f"not a share: {text!r} (write >1/2, >=2/3, 2/3 or 50%)")
        op, num, den, percent = m.groups()
        if den is not None and int(den) == 0:
            raise ValueError(f"not a share: {text!r}")
        share = Fraction(int(num), 100) if percent else Fraction(int(num), int(den or 1))
        if share > 1:
            raise ValueError(f"a share is between 0 and 1: {text!r}")
        return cls(share, op != ">")


def _fraction_text(f: Fraction) -> str:
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


TWO_THIRDS = Threshold(Fraction(2, 3), True)  # 三分之二以上
MORE_THAN_HALF = Threshold(Fraction(1, 2), False)  # 过半数
THREE_QUARTERS = Threshold(Fraction(3, 4), True)  # 四分之三以上
NO_QUORUM = Threshold(Fraction(0), True)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    quorum: Threshold  # share of the roll that must take part
    approval: Threshold  # share of the participants that must choose option 1
    by_area: bool  # art. 278: area AND headcount must each reach both thresholds


def rule(name: str, quorum: str | Threshold | None = None, approval: str | Threshold | None = None) -> Rule:
    """The rule of this name. Only `simple` and `budget` take a quorum (and `simple` an approval share):
    art. 278's are the law's."""
    if name not in RULES:
        raise ValueError(f"unknown rule {name!r} (one of {', '.join(RULES)})")
    q = Threshold.parse(quorum) if isinstance(quorum, str) and quorum else quorum or None
    a = Threshold.parse(approval) if isinstance(approval, str) and approval else approval or None
    if name in AREA_RULES:
        if q is not None or a is not None:
            raise ValueError("art. 278 thresholds are fixed by law: no --quorum or --approval")
        return Rule(name, TWO_THIRDS, MORE_THAN_HALF if name == "art278-ordinary" else THREE_QUARTERS, True)
    if name == "budget" and a is not None:
        raise ValueError("a budget vote funds projects by support: no approval share")
    return Rule(name, q or NO_QUORUM, a or MORE_THAN_HALF, False)


# -- the roll and the ballots ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Part:
    """One exclusive part (专有部分) on the roll, held by `voter`; in a vote of residents, the resident."""

    voter: Hashable
    area: Decimal = Decimal(0)
    building: Hashable = ""


@dataclass(frozen=True, slots=True)
class Ballot:
    """A voter's ballot. `at` then `receipt` order a voter's ballots: the greatest one counts."""

    voter: Hashable
    choice: int  # 1..options; 0 in a budget vote
    at: Any  # a datetime in the service; anything ordered in tests
    receipt: str = ""
    picks: tuple[int, ...] = ()  # budget: the projects chosen (positions 1..n)


def latest(ballots: Iterable[Ballot]) -> dict[Hashable, Ballot]:
    """Each voter's counted ballot: the one with the greatest (at, receipt), whatever the input order."""
    last: dict[Hashable, Ballot] = {}
    get = last.get
    for b in ballots:
        seen = get(b.voter)
        if seen is None or (b.at, b.receipt) > (seen.at, seen.receipt):
            last[b.voter] = b
    return last


def persons(holdings: Iterable[tuple[Hashable, Hashable]]) -> dict[frozenset, list]:
    """Art. 9 voters from the register's lines (flat, owner): owner set -> its flats (first-seen order).

    Flats held by exactly the same owner or set of co-owners are one voter; see the module's docstring."""
    owners_of: dict[Hashable, set] = {}
    for flat, owner in holdings:
        owners_of.setdefault(flat, set()).add(owner)
    voters: dict[frozenset, list] = {}
    for flat, owners in owners_of.items():
        voters.setdefault(frozenset(owners), []).append(flat)
    return voters


# -- the result ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Result:
    rule: str
    options: int
    ballots: int  # counted ballots: one per participating voter
    counts: tuple[int, ...]  # voters per option (index 0 is option 1); budget: supporters per project
    option_areas: tuple[Decimal, ...]
    total_area: Decimal
    total_headcount: int
    participating_area: Decimal
    participating_headcount: int
    approving_area: Decimal
    approving_headcount: int
    quorum_met: bool
    passed: bool
    winner: int | None  # the option with the most voters (1-based); None on a tie or no ballots
    funded: tuple[int, ...] = ()  # budget: positions of the funded projects, in funding order
    funded_cost: Decimal = Decimal(0)

    def shares(self) -> dict[str, Fraction | None]:
        """The exact shares the thresholds were compared with (None where the whole is zero)."""
        def share(part, whole) -> Fraction | None:
            return Fraction(part) / Fraction(whole) if whole else None

        return {
            "participation_area": share(self.participating_area, self.total_area),
            "participation_headcount": share(self.participating_headcount, self.total_headcount),
            "approval_area": share(self.approving_area, self.participating_area),
            "approval_headcount": share(self.approving_headcount, self.participating_headcount),
        }


def tally(the_rule: Rule, options: int, parts: Iterable[Part], ballots: Iterable[Ballot], *,
          budget: Decimal | None = None, costs: Sequence[Decimal] = ()) -> Result:
    """Count a closed vote. Every ballot's voter must be on the roll and its choice (or picks) valid."""
    areas: dict[Hashable, Decimal] = {}
    for p in parts:
        areas[p.voter] = areas.get(p.voter, Decimal(0)) + p.area
    counted = latest(ballots)
    is_budget = the_rule.name == "budget"
    width = len(costs) if is_budget else options
    if width < 1:
        raise ValueError("a vote needs at least one option (or project)")
    counts = [0] * width
    option_areas = [Decimal(0)] * width
    participating_area = Decimal(0)
    for voter, b in counted.items():
        area = areas.get(voter)
        if area is None:
            raise ValueError(f"ballot of {voter!r}, who is not on the roll")
        participating_area += area
        if is_budget:
            if problem := picks_problem(b.picks, costs, budget):
                raise ValueError(f"ballot of {voter!r}: {problem}")
            for position in b.picks:
                counts[position - 1] += 1
                option_areas[position - 1] += area
        else:
            if not 1 <= b.choice <= options:
                raise ValueError(f"ballot of {voter!r}: no option {b.choice}")
            counts[b.choice - 1] += 1
            option_areas[b.choice - 1] += area
    total_area = sum(areas.values(), Decimal(0))
    total_head, head = len(areas), len(counted)
    quorum = head > 0 and the_rule.quorum.met(head, total_head) and (  # no ballot, no decision
        not the_rule.by_area or the_rule.quorum.met(participating_area, total_area))
    funded: tuple[int, ...] = ()
    if is_budget:
        approving_head, approving_area = 0, Decimal(0)
        funded = fund(budget or Decimal(0), costs, counts) if quorum else ()
        passed = bool(funded)
    else:
        approving_head, approving_area = counts[0], option_areas[0]
        passed = quorum and the_rule.approval.met(approving_head, head) and (
            not the_rule.by_area or the_rule.approval.met(approving_area, participating_area))
    top = max(counts, default=0)
    winner = counts.index(top) + 1 if top and counts.count(top) == 1 else None
    return Result(the_rule.name, width, head, tuple(counts), tuple(option_areas), total_area, total_head,
                  participating_area, head, approving_area, approving_head, quorum, passed, winner, funded,
                  sum((costs[p - 1] for p in funded), Decimal(0)))


# -- 惠民项目资金: the budget rule ------------------------------------------------------------------------------------
def picks_problem(picks: Sequence[int], costs: Sequence[Decimal], budget: Decimal | None) -> str | None:
    """Why a household's choice of projects is not a valid ballot (None when it is).

    Each project at most once, each one of the listed projects, and their costs together within the budget
    (Decidim's "knapsack" ballot). Choosing none is a valid ballot: the household takes part, funds nothing."""
    if len(set(picks)) != len(picks):
        return "a project was chosen twice"
    if any(not 1 <= p <= len(costs) for p in picks):
        return "no such project"
    if budget is not None and sum((costs[p - 1] for p in picks), Decimal(0)) > budget:
        return "the projects chosen cost more than the budget"
    return None


def funding_order(costs: Sequence[Decimal], support: Sequence[int]) -> list[int]:
    """Positions (1-based) by support, most first; ties: the cheaper first (more projects get done), then the
    one listed first."""
    return sorted(range(1, len(costs) + 1), key=lambda p: (-support[p - 1], costs[p - 1], p))


def fund(budget: Decimal, costs: Sequence[Decimal], support: Sequence[int]) -> tuple[int, ...]:
    """The projects funded, in funding order.

    Projects are taken in `funding_order`. A project supported by at least one ballot is funded when its
    cost fits in what is left of the budget; one that does not fit is skipped and the next is considered, so a
    cheaper project further down may still be funded. Unsupported projects are never funded. Consequences
    (property-tested): the funded total never exceeds the budget; no supported project left out would fit in
    what is left at the end; raising a funded project's support keeps it funded."""
    left, funded = budget, []
    for position in funding_order(costs, support):
        if support[position - 1] > 0 and costs[position - 1] <= left:
            funded.append(position)
            left -= costs[position - 1]
    return tuple(funded)


# -- participation while a vote runs: who has voted, never how ------------------------------------------------------
@dataclass(frozen=True)
class Participation:
    """How far a group (the whole roll, or one building) is from the participation threshold."""

    total_area: Decimal
    voted_area: Decimal
    total_headcount: int
    voted_headcount: int
    area_short: Decimal  # area still to take part, rounded up to 0.01 m² (0 when the threshold is met)
    headcount_short: int  # owners still to take part (0 when met)

    @property
    def met(self) -> bool:
        return self.area_short == 0 and self.headcount_short == 0


def shortfall(threshold: Threshold, part: int | Decimal, whole: int | Decimal, step: Decimal | int) -> Decimal | int:
    """The least amount, in multiples of `step`, that added to `part` meets the threshold of `whole` (0 if
    met already). Areas come in hundredths of a m², people in ones."""
    if whole <= 0:
        return type(step)(0)
    if threshold.met(part, whole):
        return type(step)(0)
    missing = threshold.needed(whole) - Fraction(part)  # > 0 here
    steps = math.ceil(missing / Fraction(step))
    if not threshold.inclusive and Fraction(step) * steps == missing:
        steps += 1  # "more than": reaching the share exactly is not enough
    return step * steps


def participation(the_rule: Rule, parts: Iterable[Part], voted: Collection[Hashable]) -> tuple[
        Participation, dict[Hashable, Participation]]:
    """The whole roll's distance to the quorum, and each building's distance to the same share of its own
    parts (a guide for knocking on doors: the law's test is the whole roll's). A voter with flats in two
    buildings counts once in each building's headcount, and once in the whole roll's."""
    parts = list(parts)
    voted = set(voted)

    def group(items: list[Part]) -> Participation:
        areas: dict[Hashable, Decimal] = {}
        for p in items:
            areas[p.voter] = areas.get(p.voter, Decimal(0)) + p.area
        total_area = sum(areas.values(), Decimal(0))
        voted_area = sum((a for v, a in areas.items() if v in voted), Decimal(0))
        total, done = len(areas), sum(1 for v in areas if v in voted)
        area_short = shortfall(the_rule.quorum, voted_area, total_area, CENT) if the_rule.by_area else Decimal(0)
        return Participation(total_area, voted_area, total, done, area_short,
                             shortfall(the_rule.quorum, done, total, 1))

    buildings: dict[Hashable, list[Part]] = {}
    for p in parts:
        buildings.setdefault(p.building, []).append(p)
    return group(parts), {b: group(items) for b, items in buildings.items()}


# -- plain values for JSON -------------------------------------------------------------------------------------------
def result_json(result: Result, option_names: Sequence[str] = ()) -> dict:
    """The result as `linli vote result --json` prints it: areas as decimal strings, shares as "p/q"."""
    keys = [str(i) for i in range(1, result.options + 1)]
    return {
        "rule": result.rule,
        "options": list(option_names),
        "ballots": result.ballots,
        "counts": dict(zip(keys, result.counts)),
        "areas": {k: str(a) for k, a in zip(keys, result.option_areas)},
        "total_area": str(result.total_area),
        "total_headcount": result.total_headcount,
        "participating_area": str(result.participating_area),
        "participating_headcount": result.participating_headcount,
        "approving_area": str(result.approving_area),
        "approving_headcount": result.approving_headcount,
        "shares": {k: None if v is None else _fraction_text(v) for k, v in result.shares().items()},
        "quorum_met": result.quorum_met,
        "passed": result.passed,
        "winner": result.winner,
        "funded": list(result.funded),
        "funded_cost": str(result.funded_cost),
    }


def result_from_json(doc: Mapping) -> Result:
    """The inverse of result_json (a stored preliminary result read back)."""
    n = len(doc["counts"])
    keys = [str(i) for i in range(1, n + 1)]
    return Result(doc["rule"], n, doc["ballots"], tuple(doc["counts"][k] for k in keys),
                  tuple(Decimal(doc["areas"][k]) for k in keys), Decimal(doc["total_area"]),
                  doc["total_headcount"], Decimal(doc["participating_area"]), doc["participating_headcount"],
                  Decimal(doc["approving_area"]), doc["approving_headcount"], doc["quorum_met"], doc["passed"],
                  doc["winner"], tuple(doc["funded"]), Decimal(doc["funded_cost"]))
