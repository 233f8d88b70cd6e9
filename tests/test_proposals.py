"""民事民提、议、办、评 below the chat: raising and co-signing (the threshold told once, also under
concurrency), the committee's decisions and who may take them, comments under the rules of order, meetings,
tasks as tickets, the outcome rating, conventions, and the hot spots' candidates in the same list."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from handlers import deliberation_rules as rules
from handlers import meetings as M
from handlers import outcomes as O
from handlers import proposals as P
from handlers import votes as V
from handlers.actors import Actor
from handlers.deliberation_settings import community_order, set_order
from handlers.followup import remind_due
from storage import proposals as repo
from storage.commit import commit
from storage.ids import ticket_number
from storage.models import (Cluster, Comment, Community, Cosignature, DeliberationTask, Grid, Outbox, Proposal, Staff,
                            Ticket, TicketParty)
from storage.writer import Conflict
from tests.deliberation_support import (COMMITTEE, LI, NOW, WANG, ZHANG, ZHANG2, _warm_nlp, bind_resident,  # noqa: F401
                                        place)

HEAD = "openid-head"


@pytest.fixture
async def board(place):
    """The community wants 3 supporting households; 陈主任 heads the residents' committee in WeChat."""
    sessions, _ = place
    async with sessions() as s, s.begin():
        community = (await s.execute(select(Community.id))).scalar_one()
        await set_order(s, community, cosign_households=3, cosign_percent=0)
        s.add(Staff(openid=HEAD, role="residents_committee", is_head=True, name="陈主任", active=True, created_at=NOW))
    for i, code in enumerate(("HHXY0202", "HHXY0203")):
        await bind_resident(place, f"openid-neighbour-{i}", code)
    return place


async def run(done: P.Done, sessions) -> P.Done:
    if done.unit is not None:
        await commit(sessions, done.unit)
    return done


async def raise_(board, openid=ZHANG, text="小区东门晚上太黑，建议加装路灯") -> P.Done:
    sessions, ids = board
    return await run(await P.raise_proposal(sessions, ids, openid=openid, text=text, now=NOW), sessions)


async def outbox(board, openid) -> list[str]:
    async with board[0]() as s:
        return list((await s.execute(select(Outbox.text).where(Outbox.openid == openid).order_by(Outbox.id))).scalars())


async def status(board, number) -> str:
    async with board[0]() as s:
        return (await repo.find_proposal(s, number)).status


# ---- 民事民提 -------------------------------------------------------------------------------------------------------------
async def test_raising_and_co_signing_up_to_the_threshold(board):
    sessions, _ = board
    raised = await raise_(board)
    assert raised.outcome == "raised" and f"编号：{raised.number}" in raised.reply and "满3户" in raised.reply
    assert await status(board, raised.number) == "cosigning"
    assert (await run(await P.cosign(sessions, ref=raised.number, openid=ZHANG2, now=NOW), sessions)).outcome == \
        "already"  # 张叔叔 lives in the proposer's household
    second = await run(await P.cosign(sessions, ref=raised.number, openid=LI, now=NOW), sessions)
    assert second.outcome == "cosigned" and second.supporters == 2 and await outbox(board, HEAD) == []
    third = await run(await P.cosign(sessions, ref=raised.number, openid=WANG, now=NOW), sessions)
    assert third.supporters == 3 and "已提交社区" in third.reply
    assert await status(board, raised.number) == "candidate"
    assert len(await outbox(board, HEAD)) == 1
    await run(await P.cosign(sessions, ref=raised.number, openid="openid-neighbour-0", now=NOW), sessions)
    assert len(await outbox(board, HEAD)) == 1  # told once
    async with sessions() as s:
        assert await repo.supporters(s, (await repo.find_proposal(s, raised.number)).id) == 4


async def test_who_may_raise_and_co_sign(board):
    sessions, ids = board
    assert (await P.raise_proposal(sessions, ids, openid="stranger", text="x", now=NOW)).outcome == "not_bound"
    assert (await P.raise_proposal(sessions, ids, openid=ZHANG, text="  ", now=NOW)).outcome == "empty"
    building = await run(await P.raise_proposal(sessions, ids, openid=ZHANG, text="1栋楼道装扶手", now=NOW,
                                                scope="building"), sessions)
    assert (await P.cosign(sessions, ref=building.number, openid=WANG, now=NOW)).outcome == "out_of_scope"
    assert (await P.cosign(sessions, ref="123", openid=WANG, now=NOW)).outcome == "not_found"
    assert (await P.cosign(sessions, ref=building.number, openid="stranger", now=NOW)).outcome == "not_bound"


async def test_the_threshold_is_told_exactly_once_under_concurrent_co_signs(board):
    """Four households co-sign at once past a threshold of 3: one notice, one move to candidate."""
    sessions, _ = board
    raised = await raise_(board, openid=WANG)
    prepared = [await P.cosign(sessions, ref=raised.number, openid=o, now=NOW)
                for o in (ZHANG, LI, "openid-neighbour-0", "openid-neighbour-1")]
    await asyncio.gather(*(commit(sessions, p.unit) for p in prepared))
    assert len(await outbox(board, HEAD)) == 1 and await status(board, raised.number) == "candidate"
    async with sessions() as s:
        events = [e.action for e in await repo.timeline(s, (await repo.find_proposal(s, raised.number)).id)]
    assert events.count("reached") == 1 and events.count("cosigned") == 4


async def test_one_household_co_signing_twice_at_once_is_stored_once(board):
    sessions, _ = board
    raised = await raise_(board, openid=WANG)
    twice = [await P.cosign(sessions, ref=raised.number, openid=o, now=NOW) for o in (ZHANG, ZHANG2)]
    outcomes = await asyncio.gather(*(commit(sessions, p.unit) for p in twice), return_exceptions=True)
    assert sum(o is None for o in outcomes) == 1 and any(isinstance(o, IntegrityError) for o in outcomes)
    async with sessions() as s:
        assert (await s.execute(select(func.count()).select_from(Cosignature))).scalar_one() == 2


# ---- the committee's decision ---------------------------------------------------------------------------------------------
async def test_accept_decline_merge_withdraw_and_who_may(board):
    sessions, _ = board
    a, b, c, d = [await raise_(board, text=t) for t in ("加装路灯", "东门加路灯", "修车棚", "换垃圾桶")]
    with pytest.raises(rules.Forbidden):
        await P.accept(sessions, ref=a.number, actor=Actor(LI), now=NOW)
    with pytest.raises(rules.Forbidden):
        await P.withdraw(sessions, ref=a.number, openid=LI, now=NOW)  # only the proposer
    await run(await P.accept(sessions, ref=a.number, actor=COMMITTEE, now=NOW), sessions)
    assert "已受理" in (await outbox(board, ZHANG))[-1]
    with pytest.raises(rules.NotAllowed):
        await P.decline(sessions, ref=a.number, reason="x", actor=COMMITTEE, now=NOW)  # accepted already
    assert (await P.decline(sessions, ref=c.number, reason=" ", actor=COMMITTEE, now=NOW)).outcome == "no_reason"
    await run(await P.decline(sessions, ref=c.number, reason="车棚属于物业，已转物业办理", actor=COMMITTEE, now=NOW),
              sessions)
    assert "车棚属于物业" in (await outbox(board, ZHANG))[-1]
    await run(await P.cosign(sessions, ref=b.number, openid=LI, now=NOW), sessions)
    await run(await P.merge(sessions, ref=b.number, into=a.number, reason="", actor=COMMITTEE, now=NOW), sessions)
    async with sessions() as s:
        target = await repo.find_proposal(s, a.number)
        assert await repo.supporters(s, target.id) == 2  # 李大爷's support moved with the merge, 张's counted once
        assert (await repo.find_proposal(s, b.number)).merged_into == target.id
    await run(await P.withdraw(sessions, ref=d.number, openid=ZHANG, now=NOW), sessions)
    assert [await status(board, x.number) for x in (a, b, c, d)] == ["accepted", "merged", "declined", "withdrawn"]
    with pytest.raises(LookupError):
        await P.accept(sessions, ref="999999", actor=COMMITTEE, now=NOW)


async def test_a_decision_raced_by_another_loses_its_guard(board):
    sessions, _ = board
    a = await raise_(board)
    accept = await P.accept(sessions, ref=a.number, actor=COMMITTEE, now=NOW)
    decline = await P.decline(sessions, ref=a.number, reason="重复", actor=COMMITTEE, now=NOW)
    await commit(sessions, accept.unit)
    with pytest.raises(Conflict):
        await commit(sessions, decline.unit)


# ---- 民事民议 ---------------------------------------------------------------------------------------------------------------
async def test_comments_two_a_day_300_characters_and_hidden_with_a_reason(board):
    sessions, _ = board
    a = await raise_(board)
    for text in ("好主意", "东门确实黑"):
        assert (await run(await P.comment(sessions, ref=a.number, openid=LI, text=text, now=NOW), sessions)).outcome \
            == "commented"
    third = await P.comment(sessions, ref=a.number, openid=LI, text="再说一句", now=NOW)
    assert third.outcome == "limit" and "2次" in third.reply
    tomorrow = NOW + timedelta(days=1)
    assert (await P.comment(sessions, ref=a.number, openid=LI, text="长" * 301, now=tomorrow)).outcome == "too_long"
    assert (await run(await P.comment(sessions, ref=a.number, openid=LI, text="第二天", now=tomorrow),
                      sessions)).outcome == "commented"
    staff = Actor(HEAD, "陈主任", committee=True)
    for _ in range(3):  # the committee answering is not limited
        await run(await P.comment(sessions, ref=a.number, openid=HEAD, text="谢谢大家", now=NOW, actor=staff), sessions)
    async with sessions() as s:
        first = (await s.execute(select(Comment.id).order_by(Comment.id))).scalars().first()
    assert (await P.hide_comment(sessions, comment_id=first, reason="x", actor=Actor(LI), now=NOW)).outcome == \
        "not_allowed"
    await run(await P.hide_comment(sessions, comment_id=first, reason="含有电话号码", actor=COMMITTEE, now=NOW), sessions)
    view = await P.proposal_view(sessions, a.number, comments=10)
    assert "好主意" not in view and "这条发言已隐藏：含有电话号码" in view and "东门确实黑" in view
    async with sessions() as s:
        hidden = await s.get(Comment, first)
    assert hidden.text == "好主意" and hidden.hidden_by == "陈主任"  # kept on the record


async def test_two_comments_at_once_cannot_exceed_the_days_limit(board):
    sessions, _ = board
    a = await raise_(board)
    await run(await P.comment(sessions, ref=a.number, openid=LI, text="一", now=NOW), sessions)
    racing = [await P.comment(sessions, ref=a.number, openid=LI, text=t, now=NOW) for t in ("二", "三")]
    outcomes = await asyncio.gather(*(commit(sessions, r.unit) for r in racing), return_exceptions=True)
    assert sum(o is None for o in outcomes) == 1
    async with sessions() as s:
        assert (await s.execute(select(func.count()).select_from(Comment))).scalar_one() == 2


async def test_meetings_sign_in_minutes_and_options_for_the_vote(board):
    sessions, ids = board
    a = await raise_(board)
    await run(await P.cosign(sessions, ref=a.number, openid=LI, now=NOW), sessions)
    with pytest.raises(rules.NotAllowed):  # not accepted yet
        await M.schedule_meeting(sessions, ids, ref=a.number, starts_at=NOW, place="活动室", actor=COMMITTEE, now=NOW)
    await run(await P.accept(sessions, ref=a.number, actor=COMMITTEE, now=NOW), sessions)
    starts = NOW + timedelta(days=2)
    meeting = await run(await M.schedule_meeting(sessions, ids, ref=a.number, starts_at=starts, place="社区活动室",
                                                 actor=COMMITTEE, now=NOW), sessions)
    assert await status(board, a.number) == "deliberating"
    assert any(f"签到 {meeting.number}" in t for t in await outbox(board, LI))  # supporters are told
    assert (await M.sign_in(sessions, ref=meeting.number, openid=LI, now=NOW)).outcome == "not_now"
    signed = await run(await M.sign_in(sessions, ref=meeting.number, openid=LI, now=starts), sessions)
    assert signed.outcome == "signed_in" and f"编号：{meeting.number}" in signed.reply
    assert (await M.sign_in(sessions, ref=meeting.number, openid=LI, now=starts)).outcome == "already"
    await run(await M.record_minutes(sessions, ref=meeting.number, minutes="同意在东门加装两盏路灯", actor=COMMITTEE,
                                     now=starts), sessions)
    assert (await M.record_options(sessions, ref=meeting.number, options=["同意"], actor=COMMITTEE,
                                   now=starts)).outcome == "bad_options"
    await run(await M.record_options(sessions, ref=meeting.number, options=["同意", "反对", "弃权"],
                                     actor=COMMITTEE, now=starts), sessions)
    assert await M.meeting_options(sessions, (await _proposal(sessions, a.number)).id) == ["同意", "反对", "弃权"]
    view = await P.proposal_view(sessions, a.number)
    assert f"议事会 编号 {meeting.number}" in view and "有纪要" in view


async def _proposal(sessions, number) -> Proposal:
    async with sessions() as s:
        return await repo.find_proposal(s, number)


# ---- 民事民决 → 民事民办 → 民事民评 -------------------------------------------------------------------------------------------
async def decided(board) -> P.Done:
    """A proposal accepted, voted on by every household, final: decided."""
    sessions, ids = board
    a = await raise_(board)
    await run(await P.accept(sessions, ref=a.number, actor=COMMITTEE, now=NOW), sessions)
    proposal = await _proposal(sessions, a.number)
    opened = await V.open_vote(sessions, ids, V.VoteSpec(
        community="c", title="东门加装路灯", rule="simple", options=["同意", "反对"], proposal_id=proposal.id,
        closes_at=NOW + timedelta(days=3), objection_days=0), actor=COMMITTEE, now=NOW)
    await commit(sessions, opened.unit)
    assert await status(board, a.number) == "voting"
    for openid in (ZHANG, LI, WANG):
        await commit(sessions, (await V.cast_ballot(sessions, vote_ref=opened.number, openid=openid, choice=1,
                                                    now=NOW)).unit)
    await V.close_vote(sessions, opened.number, now=NOW + timedelta(days=3))
    assert await V.finalise_vote(sessions, opened.number, now=NOW + timedelta(days=3)) == "final"
    assert await status(board, a.number) == "decided"
    return a


async def test_a_decision_becomes_tasks_that_are_tickets_of_the_responsible_body(board, engine):
    sessions, ids = board
    a = await decided(board)
    async with sessions() as s, s.begin():
        s.add(Staff(openid="openid-property", role="property", name="物业老赵", active=True, created_at=NOW))
    later = NOW + timedelta(days=3)
    task = O.Task("property", "在东门加装两盏路灯", later + timedelta(days=10), "facilities")
    refused = await O.create_task(sessions, ids, ref=a.number, task=O.Task("nobody", "x", later + timedelta(days=1)),
                                  actor=COMMITTEE, now=later)
    assert refused.outcome == "bad_body"
    with pytest.raises(rules.Forbidden):
        await O.create_task(sessions, ids, ref=a.number, task=task, actor=Actor(LI), now=later)
    made = await run(await O.create_task(sessions, ids, ref=a.number, task=task, actor=COMMITTEE, now=later), sessions)
    assert await status(board, a.number) == "doing"
    async with sessions() as s:
        ticket = (await s.execute(select(Ticket).where(Ticket.number == made.number))).scalar_one()
        parties = (await s.execute(select(TicketParty.route).where(TicketParty.ticket_id == ticket.id))).scalars().all()
        link = await s.get(DeliberationTask, ticket.id)
    assert (ticket.intent, ticket.route, ticket.status, ticket.openid) == ("task", "property", "dispatched", ZHANG)
    assert ticket.resolve_due == later + timedelta(days=10) and parties == ["property"]
    assert link.proposal_id == (await _proposal(sessions, a.number)).id and link.vote_id is not None
    assert made.number in (await outbox(board, "openid-property"))[-1]
    # the tickets' own follow-through works on it: a reminder before its response deadline
    assert await remind_due(engine, ticket.response_due - timedelta(minutes=1)) == 1
    assert f"办理 编号 {made.number}" in await P.proposal_view(sessions, a.number)


async def test_done_tasks_ask_the_voters_to_rate_once(board, engine):
    sessions, ids = board
    a = await decided(board)
    later = NOW + timedelta(days=3)
    made = await run(await O.create_task(sessions, ids, ref=a.number, task=O.Task(
        "residents_committee", "联系供电所", later + timedelta(days=5)), actor=COMMITTEE, now=later), sessions)
    jobs = {name: job for name, _, job in O.jobs(engine)}
    assert await jobs["deliberation_tasks_done"](later) == 0
    async with sessions() as s, s.begin():
        ticket = (await s.execute(select(Ticket).where(Ticket.number == made.number))).scalar_one()
        ticket.status = "resolved"
    assert await jobs["deliberation_tasks_done"](later) == 1
    assert await status(board, a.number) == "evaluating"
    assert any("您满意吗" in t for t in await outbox(board, LI))
    assert not any("您满意吗" in t for t in await outbox(board, "openid-neighbour-0"))  # did not vote
    assert (await O.rate_outcome(sessions, ref=a.number, openid="openid-neighbour-0", rating=1, now=later)).outcome \
        == "not_voter"
    assert (await O.rate_outcome(sessions, ref=a.number, openid=LI, rating=5, now=later)).outcome == "bad_rating"
    await run(await O.rate_outcome(sessions, ref=a.number, openid=LI, rating=2, now=later), sessions)
    assert (await O.rate_outcome(sessions, ref=a.number, openid=LI, rating=1, now=later)).outcome == "already"
    await run(await O.rate_outcome(sessions, ref=a.number, openid=WANG, rating=3, now=later), sessions)
    closed = await run(await O.close_evaluation(sessions, ref=a.number, actor=COMMITTEE, now=later), sessions)
    assert "满意 0，基本满意 1，不满意 1" in closed.reply and await status(board, a.number) == "evaluated"
    async with sessions() as s:
        actions = [e.action for e in await repo.timeline(s, (await _proposal(sessions, a.number)).id)]
    assert actions[:2] == ["raised", "accepted"] and actions[-4:] == ["completed", "rated", "rated", "evaluated"]
    assert "vote_opened" in actions and "vote_final" in actions and "task_created" in actions  # one timeline


async def test_conventions_are_listed_with_their_vote(board):
    sessions, ids = board
    opened = await V.open_vote(sessions, ids, V.VoteSpec(
        community="c", title="文明养宠公约", rule="simple", options=["同意", "反对"], convention="遛狗牵绳。",
        closes_at=NOW + timedelta(days=1), objection_days=0), actor=COMMITTEE, now=NOW)
    await commit(sessions, opened.unit)
    await commit(sessions, (await V.cast_ballot(sessions, vote_ref=opened.number, openid=LI, choice=1, now=NOW)).unit)
    await V.close_vote(sessions, opened.number, now=NOW + timedelta(days=1))
    await V.finalise_vote(sessions, opened.number, now=NOW + timedelta(days=1))
    async with sessions() as s:
        community = (await s.execute(select(Community.id))).scalar_one()
        listed = await repo.conventions(s, community)
    assert [(c.title, number) for c, number in listed] == [("文明养宠公约", opened.number)]


# ---- hot spots' candidates -------------------------------------------------------------------------------------------------
async def test_hot_spot_candidates_get_a_shared_number_and_join_the_list(board, engine):
    """The hot-spot code inserts a candidate without an id: it draws one of the tickets' sequence."""
    sessions, ids = board
    raised = await raise_(board)
    ticket_id, proposal_id = await ids.next(), await ids.next()  # as the intake numbers a hot spot's candidate
    async with sessions() as s, s.begin():
        grid = (await s.execute(select(Grid.id).where(Grid.code == "1"))).scalar_one()
        s.add(Ticket(id=ticket_id, number=ticket_number(ticket_id), openid=LI, text="路灯坏了", category="facilities",
                     confidence=1.0, created_at=NOW, updated_at=NOW, grid_id=grid))
        await s.flush()
        s.add(Cluster(id=ticket_id, grid_id=grid, category="facilities", households=5, created_at=NOW,
                      updated_at=NOW, proposed_at=NOW))
        await s.flush()
        s.add(Proposal(id=proposal_id, number=ticket_number(proposal_id), title="1号网格路灯问题（5户反映）",
                       source="cluster", cluster_id=ticket_id, status="candidate", created_at=NOW))
    async with sessions() as s:
        candidate = (await s.execute(select(Proposal).where(Proposal.source == "cluster"))).scalar_one()
        community = (await s.execute(select(Community.id))).scalar_one()
        listed = [p.number for p in await repo.proposals_of(s, community)]
    assert candidate.id == proposal_id and candidate.number == ticket_number(candidate.id)
    assert set(listed) == {raised.number, candidate.number}
    assert candidate.id not in [await ids.next() for _ in range(5)]  # the allocator never hands it out again
    await run(await P.accept(sessions, ref=candidate.number, actor=COMMITTEE, now=NOW), sessions)


async def test_rules_of_order_come_from_the_community_settings(board):
    async with board[0]() as s:
        community = (await s.execute(select(Community.id))).scalar_one()
        order = await community_order(s, community)
        assert (order.cosign_households, order.cosign_percent, order.comments_per_day) == (3, 0, 2)
        assert await community_order(s, None) == rules.Order()
        with pytest.raises(ValueError):
            await set_order(s, community, colour="red")
