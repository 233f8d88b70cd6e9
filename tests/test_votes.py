"""Votes end to end below the chat: roll, ballots and replacements, close, objection window, final result,
participation, bulletin, paper ballots, budgets, the scheduler's jobs, and one ballot per voting unit
under concurrency, on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from handlers import votes as V
from handlers.actors import Actor
from handlers.deliberation_rules import Forbidden
from storage.commit import commit
from storage.ids import ticket_number
from storage.models import (Ballot, BallotRecord, BuildingCaptain, Convention, DeliberationEvent, Household, Outbox,
                            Objection, Proposal, Vote)
from storage.writer import Conflict, Writer
from tests.deliberation_support import COMMITTEE, LI, NOW, WANG, ZHANG, ZHANG2, _warm_nlp, key, place  # noqa: F401


async def open_(place, **kw) -> V.Opened:
    sessions, ids = place
    spec = V.VoteSpec(**{"community": "c", "title": "更换小区物业", "rule": "art278-ordinary",
                         "options": ["同意", "反对", "弃权"], "closes_at": NOW + timedelta(days=7), **kw})
    opened = await V.open_vote(sessions, ids, spec, actor=COMMITTEE, now=NOW)
    await commit(sessions, opened.unit)
    return opened


async def cast(place, vote, openid, choice=None, *, at=NOW, picks=()) -> V.Cast:
    sessions, _ = place
    result = await V.cast_ballot(sessions, vote_ref=vote.number, openid=openid, choice=choice, picks=picks, now=at)
    if result.unit is not None:
        await commit(sessions, result.unit)
    return result


async def paper(place, vote, owner, choice, at=NOW, **kw) -> V.Cast:
    sessions, _ = place
    result = await V.paper_ballot(sessions, vote_ref=vote.vote_id, owner=owner, choice=choice, by="陈主任",
                                  actor=COMMITTEE, now=at, **kw)
    if result.unit is not None:
        await commit(sessions, result.unit)
    return result


async def outbox(place, openid) -> list[str]:
    async with place[0]() as s:
        return list((await s.execute(select(Outbox.text).where(Outbox.openid == openid).order_by(Outbox.id))).scalars())


async def timeline(place, vote) -> list[tuple[str, str]]:
    async with place[0]() as s:
        return [(e.action, e.note) for e in (await s.execute(select(DeliberationEvent).where(
            DeliberationEvent.vote_id == vote.vote_id).order_by(DeliberationEvent.id))).scalars()]


# ---- opening ---------------------------------------------------------------------------------------------------------
async def test_an_art278_vote_opens_on_the_register_with_art9_voters(place):
    opened = await open_(place)
    assert opened.number == ticket_number(opened.vote_id) and opened.voters == 4 and opened.unregistered == 1
    assert opened.notified == 3  # the three who bound their codes; the developer has no WeChat
    assert "表决" in (await outbox(place, ZHANG))[0] and "1 同意" in (await outbox(place, ZHANG))[0]
    assert await outbox(place, WANG) == []  # a tenant is not an owner
    async with place[0]() as s:
        proposal = await s.get(Proposal, opened.proposal_id)
        assert (proposal.status, proposal.source, proposal.number) == ("voting", "committee",
                                                                      ticket_number(proposal.id))
    doc = await V.result_document(place[0], opened.number)
    assert (doc["total_area"], doc["total_headcount"], doc["closed"]) == ("410.00", 4, False)
    assert doc["counts"] is None and doc["passed"] is None and doc["approving_area"] is None


@pytest.mark.parametrize(("change", "message"), [
    (dict(rule="art278-major", unit="household"), "业主"),
    (dict(options=["反对", "同意"]), "同意"),
    (dict(options=["只有一个"]), "选项"),
    (dict(rule="art278-ordinary", quorum="1/2"), "law"),
    (dict(community="nowhere"), "没有社区"),
    (dict(scope="building", scope_ref="9栋"), "no building"),
    (dict(closes_at=NOW - timedelta(minutes=1)), "截止"),
    (dict(rule="budget"), "资金"),
    (dict(rule="majority"), "规则"),
])
async def test_a_vote_that_cannot_be_opened_says_why(place, change, message):
    with pytest.raises(V.VoteError, match=message):
        await open_(place, **change)


async def test_only_the_committee_opens_votes(place):
    sessions, ids = place
    spec = V.VoteSpec(community="c", title="t", rule="simple", options=["同意", "反对"])
    with pytest.raises(V.VoteError):
        await V.open_vote(sessions, ids, spec, actor=Actor(ZHANG), now=NOW)


# ---- casting ---------------------------------------------------------------------------------------------------------
async def test_casting_replacing_and_the_last_ballot_counts(place):
    vote = await open_(place)
    first = await cast(place, vote, LI, 2)
    assert first.outcome == "cast" and not first.replaced and f"凭证：{first.receipts[0]}" in first.reply
    assert f"编号：{vote.number}" in first.reply
    again = await cast(place, vote, LI, 1, at=NOW + timedelta(hours=1))
    assert again.replaced and "已改为：1 同意" in again.reply
    async with place[0]() as s:
        rows = (await s.execute(select(Ballot).where(Ballot.vote_id == vote.vote_id))).scalars().all()
        history = (await s.execute(select(func.count()).select_from(BallotRecord))).scalar_one()
    assert [(b.choice, b.receipt) for b in rows] == [(1, again.receipts[0])] and history == 2


async def test_co_owners_are_one_voter_and_the_latest_counts_whoever_cast_it(place):
    vote = await open_(place)
    await cast(place, vote, ZHANG, 1, at=NOW + timedelta(minutes=5))
    late_arrival = await cast(place, vote, ZHANG2, 2, at=NOW + timedelta(minutes=1))  # cast earlier, stored later
    assert late_arrival.outcome == "cast"
    async with place[0]() as s:
        rows = (await s.execute(select(Ballot.choice).where(Ballot.vote_id == vote.vote_id))).scalars().all()
    assert rows == [1]  # 张阿姨's later ballot stays the flat's


async def test_who_may_vote(place):
    art278 = await open_(place)
    assert (await cast(place, art278, WANG, 1)).outcome == "not_eligible"  # tenants only in simple votes
    assert (await cast(place, art278, "stranger", 1)).outcome == "not_eligible"
    assert (await cast(place, art278, LI, 4)).outcome == "bad_choice"
    assert (await cast(place, art278, LI, None)).outcome == "bad_choice"
    nothing = await V.cast_ballot(place[0], vote_ref="99999", openid=LI, choice=1, now=NOW)
    assert nothing.outcome == "no_vote"
    simple = await open_(place, rule="simple", title="楼下装健身器材", unit="household")
    assert (await cast(place, simple, WANG, 1)).outcome == "cast"  # a bound tenant votes for the household
    both = {await key(place, "h", "HHXY0102"), await key(place, "h", "HHXY0201")}
    assert set((await cast(place, simple, LI, 1)).voters) == both  # an owner of two flats votes for each
    residents = await open_(place, rule="simple", title="垃圾分类时间", unit="resident")
    assert residents.voters == 4  # 王 and the three owners who bound their codes


async def test_nothing_is_accepted_after_the_close(place):
    vote = await open_(place)
    prepared = await V.cast_ballot(place[0], vote_ref=vote.number, openid=LI, choice=1, now=NOW)  # in flight
    await V.close_vote(place[0], vote.number, now=NOW + timedelta(hours=1), actor=COMMITTEE)
    with pytest.raises(Conflict):
        await commit(place[0], prepared.unit)  # its guard finds the roll row closed
    assert (await cast(place, vote, LI, 1, at=NOW + timedelta(hours=2))).outcome == "closed"
    assert (await cast(place, vote, LI, 1, at=vote_closes(vote))).outcome == "closed"
    doc = await V.result_document(place[0], vote.number)
    assert doc["ballots"] == 0


def vote_closes(opened) -> datetime:
    return NOW + timedelta(days=7)


async def test_a_ballot_at_the_closing_time_is_refused_even_before_the_job_runs(place):
    vote = await open_(place)
    assert (await cast(place, vote, LI, 1, at=NOW + timedelta(days=7))).outcome == "closed"
    assert (await cast(place, vote, LI, 1, at=NOW + timedelta(days=7, seconds=-1))).outcome == "cast"


# ---- the close, the result, the objection window ----------------------------------------------------------------------
async def test_the_close_counts_exactly_and_publishes_with_an_objection_window(place):
    vote = await open_(place, objection_days=3)
    await cast(place, vote, ZHANG, 1)
    await cast(place, vote, LI, 1)
    assert (await paper(place, vote, "DEV", 2)).outcome == "cast"
    doc = await V.close_vote(place[0], vote.number, now=NOW + timedelta(days=7))
    assert doc["status"] == "publicised" and doc["closed"]
    assert (doc["total_area"], doc["participating_area"], doc["approving_area"]) == ("410.00", "340.00", "240.00")
    assert (doc["total_headcount"], doc["participating_headcount"], doc["approving_headcount"]) == (4, 3, 2)
    assert doc["counts"] == {"1": 2, "2": 1, "3": 0} and doc["quorum_met"] and doc["passed"]
    assert doc["shares"]["participation_area"] == "34/41"
    notice = (await outbox(place, LI))[-1]
    assert "结果：通过" in notice and "异议" in notice and "340.00/410.00" in notice
    assert await outbox(place, WANG) == []
    # within the window: an objection, which holds the result until it is answered
    objected = await V.object_to(place[0], vote_ref=vote.number, openid=ZHANG2, text="纸质票的签名不对",
                                 now=NOW + timedelta(days=8))
    assert objected.outcome == "recorded"
    await commit(place[0], objected.unit)
    after_window = NOW + timedelta(days=11)
    assert await V.finalise_vote(place[0], vote.number, now=after_window) == "unanswered"
    async with place[0]() as s:
        objection_id = (await s.execute(select(Objection.id))).scalar_one()
    await commit(place[0], await V.answer_objection(place[0], objection_id, answer="已核对原件，签名无误",
                                                    actor=COMMITTEE, now=after_window))
    assert "已核对原件" in (await outbox(place, ZHANG2))[-1]
    assert await V.finalise_vote(place[0], vote.number, now=NOW + timedelta(days=9)) == "waiting"
    assert await V.finalise_vote(place[0], vote.number, now=after_window) == "final"
    async with place[0]() as s:
        assert (await s.get(Proposal, vote.proposal_id)).status == "decided"
    actions = [a for a, _ in await timeline(place, vote)]
    assert actions == ["vote_opened", "paper_ballot", "vote_closed", "vote_publicised", "objection",
                       "objection_answered", "vote_final"]


async def test_a_failed_quorum_rejects_the_matter(place):
    vote = await open_(place, objection_days=0)
    await cast(place, vote, ZHANG, 1)
    await cast(place, vote, LI, 1)  # 240 of 410 m²: under 2/3
    doc = await V.close_vote(place[0], vote.number, now=NOW + timedelta(days=7))
    assert not doc["quorum_met"] and not doc["passed"]
    assert await V.finalise_vote(place[0], vote.number, now=NOW + timedelta(days=7)) == "final"
    async with place[0]() as s:
        assert (await s.get(Proposal, vote.proposal_id)).status == "rejected"


async def test_objections_only_from_voters_within_the_window(place):
    vote = await open_(place, objection_days=2)
    early = await V.object_to(place[0], vote_ref=vote.number, openid=LI, text="x", now=NOW)
    assert early.outcome == "not_now"
    await V.close_vote(place[0], vote.number, now=NOW + timedelta(days=7))
    assert (await V.object_to(place[0], vote_ref=vote.number, openid=WANG, text="x",
                              now=NOW + timedelta(days=8))).outcome == "not_eligible"
    assert (await V.object_to(place[0], vote_ref=vote.number, openid=LI, text="x",
                              now=NOW + timedelta(days=9))).outcome == "not_now"


async def test_annulling_sends_the_matter_back_to_deliberation(place):
    vote = await open_(place)
    await cast(place, vote, LI, 1)
    await V.close_vote(place[0], vote.number, now=NOW + timedelta(days=7))
    with pytest.raises(V.VoteError):
        await V.annul_vote(place[0], vote.number, reason="", actor=COMMITTEE, now=NOW + timedelta(days=8))
    await commit(place[0], await V.annul_vote(place[0], vote.number, reason="计票有误", actor=COMMITTEE,
                                              now=NOW + timedelta(days=8)))
    async with place[0]() as s:
        assert (await s.get(Vote, vote.vote_id)).status == "annulled"
        assert (await s.get(Proposal, vote.proposal_id)).status == "deliberating"
    assert "作废" in (await outbox(place, LI))[-1]


async def test_a_passed_vote_adopts_its_convention_when_final(place):
    vote = await open_(place, rule="simple", unit="household", title="文明养犬公约", objection_days=0,
                       convention="遛狗牵绳，及时清理。")
    await cast(place, vote, ZHANG, 1)
    await cast(place, vote, WANG, 1)
    await V.close_vote(place[0], vote.number, now=NOW + timedelta(days=7))
    await V.finalise_vote(place[0], vote.number, now=NOW + timedelta(days=7))
    async with place[0]() as s:
        conventions = (await s.execute(select(Convention))).scalars().all()
    assert [(c.title, c.text, c.vote_id) for c in conventions] == [("文明养犬公约", "遛狗牵绳，及时清理。", vote.vote_id)]


# ---- what people see ----------------------------------------------------------------------------------------------------
async def test_the_bulletin_only_after_the_close_with_counted_ballots_only(place):
    vote = await open_(place)
    replaced = await cast(place, vote, LI, 2)
    counted = await cast(place, vote, LI, 1, at=NOW + timedelta(minutes=1))
    zhang = await cast(place, vote, ZHANG, 3)
    with pytest.raises(V.VoteError):
        await V.bulletin(place[0], vote.number)
    await V.close_vote(place[0], vote.number, now=NOW + timedelta(days=7))
    doc = await V.bulletin(place[0], vote.number)
    receipts = {b["receipt"]: b["choice"] for b in doc["ballots"]}
    assert receipts == {counted.receipts[0]: 1, zhang.receipts[0]: 3}
    assert replaced.receipts[0] not in receipts
    assert [b["receipt"] for b in doc["ballots"]] == sorted(receipts)  # in receipt order: says nothing of who
    assert {tuple(b["flats"]) for b in doc["ballots"]} == {("1栋1单元102", "2栋201"), ("1栋1单元101",)}


async def test_a_secret_vote_names_nobody(place):
    vote = await open_(place, secret=True)
    await cast(place, vote, LI, 1)
    await paper(place, vote, "DEV", 2)
    await V.close_vote(place[0], vote.number, now=NOW + timedelta(days=7))
    doc = await V.bulletin(place[0], vote.number)
    assert doc["secret"] and all(set(b) == {"receipt", "choice"} for b in doc["ballots"])
    async with place[0]() as s:
        assert set((await s.execute(select(BallotRecord.cast_by))).scalars()) == {""}
    assert all("选" not in note for action, note in await timeline(place, vote) if action == "paper_ballot")


async def test_participation_shows_who_voted_never_how_to_whom_it_belongs(place):
    vote = await open_(place)
    await cast(place, vote, LI, 2)  # 1栋102 and 2栋201
    view = await V.participation_view(place[0], vote.number, COMMITTEE)
    assert (view.whole.voted_headcount, view.whole.voted_area) == (1, Decimal("140.00"))
    assert (view.whole.headcount_short, view.whole.area_short) == (2, Decimal("133.34"))  # 2/3 of 410 is 273.33…
    assert view.buildings["1栋"].voted_headcount == 1 and view.buildings["2栋"].voted_headcount == 1
    assert view.not_voted == {"1栋": ["1栋1单元101"], "2栋": ["2栋202", "2栋203", "2栋204"]}
    assert not hasattr(view, "counts")
    async with place[0]() as s, s.begin():
        building = (await s.execute(select(Household.building_id).where(Household.code == "HHXY0201"))).scalar_one()
        s.add(BuildingCaptain(openid=WANG, building_id=building, created_at=NOW))
    captain = await V.participation_view(place[0], vote.number, Actor(WANG, buildings=frozenset({building})))
    assert captain.whole is None and set(captain.buildings) == {"2栋"} and set(captain.not_voted) == {"2栋"}
    with pytest.raises(Forbidden):
        await V.participation_view(place[0], vote.number, Actor(ZHANG))


async def test_paper_ballots_are_on_the_timeline(place):
    vote = await open_(place)
    assert (await paper(place, vote, "NOBODY", 1)).outcome == "not_eligible"
    entered = await paper(place, vote, "DEV", 2)
    assert entered.outcome == "cast" and entered.voters == (await key(place, "o", "HHXY0202"),)
    notes = [n for a, n in await timeline(place, vote) if a == "paper_ballot"]
    assert notes == ["陈主任 录入业主 DEV的纸质票，选 2（陈主任）"]
    refused = await V.paper_ballot(place[0], vote_ref=vote.number, owner="DEV", choice=1, by="张阿姨",
                                   actor=Actor(ZHANG), now=NOW)
    assert refused.outcome == "not_allowed"


# ---- 惠民项目资金 --------------------------------------------------------------------------------------------------------
async def test_a_budget_vote_funds_projects_by_support(place):
    projects = [("修路灯", Decimal("6000")), ("装座椅", Decimal("5000")), ("种花", Decimal("3000"))]
    vote = await open_(place, rule="budget", unit="household", title="2027年惠民资金", budget=Decimal("10000"),
                       projects=projects, options=[])
    assert (await cast(place, vote, LI, picks=(1, 2))).outcome == "bad_choice"  # 11000 > 10000
    assert (await cast(place, vote, LI, picks=(1, 3))).outcome == "cast"
    assert (await cast(place, vote, WANG, picks=(2, 3))).outcome == "cast"
    assert (await cast(place, vote, ZHANG, picks=(2,))).outcome == "cast"
    doc = await V.close_vote(place[0], vote.number, now=NOW + timedelta(days=7))
    # support: 修路灯 2 (LI's two flats), 装座椅 2, 种花 3; 种花 first, then the cheaper of the tie (装座椅)
    assert doc["counts"] == {"1": 2, "2": 2, "3": 3} and doc["funded"] == [3, 2] and doc["funded_cost"] == "8000.00"
    bulletin = await V.bulletin(place[0], vote.number)
    assert sorted(b["choice"] for b in bulletin["ballots"]) == [[1, 3], [1, 3], [2], [2, 3]]


# ---- the scheduler's jobs -------------------------------------------------------------------------------------------------
async def test_jobs_remind_once_close_and_finalise(place, engine):
    vote = await open_(place, objection_days=1)
    await cast(place, vote, LI, 1)
    jobs = {name: job for name, _, job in V.jobs(engine)}
    assert await jobs["votes_remind"](NOW + timedelta(days=5)) == 0  # more than a day before the close
    assert await jobs["votes_remind"](NOW + timedelta(days=6, hours=1)) == 1
    assert await jobs["votes_remind"](NOW + timedelta(days=6, hours=2)) == 0  # once
    assert any("提醒" in t for t in await outbox(place, ZHANG))
    assert not any("提醒" in t for t in await outbox(place, LI))  # he has voted
    assert await jobs["votes_close"](NOW + timedelta(days=6)) == 0
    assert await jobs["votes_close"](NOW + timedelta(days=7)) == 1
    assert await jobs["votes_finalise"](NOW + timedelta(days=7, hours=1)) == 0
    assert await jobs["votes_finalise"](NOW + timedelta(days=8)) == 1
    async with place[0]() as s:
        assert (await s.get(Vote, vote.vote_id)).status == "final"


# ---- concurrency --------------------------------------------------------------------------------------------------------
async def test_one_ballot_per_voting_unit_under_concurrent_casts(place):
    """Co-owners and repeats cast at once, each in its own transaction and connection: one row per unit,
    holding the latest ballot, and every cast in the history."""
    vote = await open_(place)
    sessions = place[0]
    moments = [NOW + timedelta(seconds=s) for s in range(12)]
    plan = [(openid, 1 + i % 3, moments[i]) for i, openid in enumerate([ZHANG, ZHANG2, LI] * 4)]
    prepared = [await V.cast_ballot(sessions, vote_ref=vote.number, openid=o, choice=c, now=at) for o, c, at in plan]
    await asyncio.gather(*(commit(sessions, p.unit) for p in prepared))
    async with sessions() as s:
        rows = {b.voter: (b.choice, b.cast_at) for b in (await s.execute(
            select(Ballot).where(Ballot.vote_id == vote.vote_id))).scalars()}
        history = (await s.execute(select(func.count()).select_from(BallotRecord))).scalar_one()
    latest = {}
    for (openid, choice, at), p in zip(plan, prepared):
        for voter in p.voters:
            if voter not in latest or at > latest[voter][1]:
                latest[voter] = (choice, at)
    assert rows == latest and len(rows) == 2 and history == 12


async def test_ballots_racing_the_close_are_counted_or_refused_never_lost(place):
    """Many ballots and the close at once: each ballot either counts or was refused with Conflict."""
    vote = await open_(place, rule="simple", unit="resident", title="并发测试")
    sessions = place[0]
    voters = [ZHANG, ZHANG2, LI, WANG]
    prepared = [await V.cast_ballot(sessions, vote_ref=vote.number, openid=o, choice=1, now=NOW) for o in voters]

    async def try_commit(p):
        try:
            await commit(sessions, p.unit)
            return True
        except (Conflict, IntegrityError):
            return False

    outcomes = await asyncio.gather(*(try_commit(p) for p in prepared[:2]),
                                    V.close_vote(sessions, vote.number, now=NOW + timedelta(hours=1)),
                                    *(try_commit(p) for p in prepared[2:]))
    committed = [o for o in outcomes if isinstance(o, bool)]
    doc = outcomes[2]
    assert doc["ballots"] == sum(committed)
    async with sessions() as s:
        stored = (await s.execute(select(func.count()).select_from(Ballot).where(Ballot.vote_id == vote.vote_id))
                  ).scalar_one()
    assert stored == doc["ballots"]  # nothing committed after the count


async def test_one_ballot_per_unit_through_the_group_commit_writer(place, engine):
    """The webhook's path: units with guards through storage.writer.Writer, all submitted at once."""
    vote = await open_(place)
    writer = Writer(engine)
    try:
        prepared = [await V.cast_ballot(place[0], vote_ref=vote.number, openid=o, choice=c,
                                        now=NOW + timedelta(seconds=i))
                    for i, (o, c) in enumerate([(ZHANG, 1), (ZHANG2, 2), (LI, 3), (ZHANG, 3), (LI, 1)])]
        await asyncio.gather(*(writer.write(p.unit) for p in prepared))
    finally:
        await writer.stop()
    async with place[0]() as s:
        rows = dict((await s.execute(select(Ballot.voter, Ballot.choice).where(Ballot.vote_id == vote.vote_id))).all())
    assert rows == {await key(place, "o", "HHXY0101"): 3, await key(place, "o", "HHXY0102"): 1}


async def test_the_stored_result_is_what_a_recount_of_the_bulletin_gives(place):
    vote = await open_(place)
    for openid, choice in ((ZHANG, 1), (LI, 2), (ZHANG2, 3)):
        await cast(place, vote, openid, choice)
    await paper(place, vote, "DEV", 1)
    doc = await V.close_vote(place[0], vote.number, now=NOW + timedelta(days=7))
    recount = {"1": 0, "2": 0, "3": 0}
    for b in (await V.bulletin(place[0], vote.number))["ballots"]:
        recount[str(b["choice"])] += 1
    assert recount == doc["counts"]
    async with place[0]() as s:
        stored = json.loads((await s.get(Vote, vote.vote_id)).result)
    assert {k: v for k, v in doc.items() if k in stored} == stored
