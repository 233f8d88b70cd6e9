"""The demo community's deliberation: an owners' register (storage/demo/owners.csv), a proposal being
co-signed, a running vote and a closed one in its objection window. Run after storage.community.seed_demo.

- 张阿姨 co-owns 3栋2单元501 with 张大伯; 李大爷 owns 1栋1单元301 and 4栋2单元101 (one voter, two flats);
  the developer still holds 6栋201 and 6栋202 (one voter); everyone else owns one flat. 张阿姨 and 李大爷
  have bound their owner codes.
- 张阿姨 raised “楼道加装感应灯” and 李大爷 co-signed it: 2 households, 5 % of 32, so 陈主任 was told.
- A running art. 278 vote, advisory (征询), on renewing the property company's contract: 李大爷 has voted.
- A closed household vote on a 微公约 (dog walking), its result published and its objection window open.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers import votes
from handlers.actors import Actor
from handlers.owners import bind_owner
from handlers.proposals import cosign, raise_proposal
from storage.commit import commit
from storage.community import DEMO_COMMUNITY, DEMO_DIR
from storage.db import sessionmaker
from storage.ids import IdAllocator
from storage.models import Community, Owner, Proposal
from storage.owners import import_owners

DEMO_OWNER_CODES = {"张阿姨": "ZHANG-AYI", "李大爷": "LI-DAYE"}  # display name -> owner_id in owners.csv
FIRST_ID = 10000  # bot.app.FIRST_TICKET_ID
PAPER = {  # the closed vote: paper ballots of households without WeChat, by household code -> choice
    "8ZVBVD2B": 1, "YZ5KBCUW": 1, "2ZYNJXKQ": 2, "DP7MYKME": 1, "7DAH8DA9": 1, "8FUBS8QN": 3, "KXF22FPX": 1, "ZYLKERG7": 1,
    "FHE4NBPH": 2, "G48JL3H4": 1, "X2AVX4VL": 1,
}


async def seed_demo_deliberation(engine: AsyncEngine, identities: dict[str, str], now: datetime) -> bool:
    """Seed once (False when the register was there already). `identities`: display name -> openid."""
    sessions = sessionmaker(engine)
    async with sessions() as session:
        community = (await session.execute(select(Community).where(Community.code == DEMO_COMMUNITY))).scalar_one()
        if (await session.execute(select(Owner.id).where(Owner.community_id == community.id).limit(1))).first():
            return False
    report = await import_owners(engine, DEMO_DIR / "owners.csv")
    if not report.ok:
        raise ValueError("demo owners are broken:\n" + report.summary())
    async with sessions() as session:
        codes = dict((await session.execute(select(Owner.register_id, Owner.code).where(
            Owner.register_id.in_(DEMO_OWNER_CODES.values())))).all())
    for name, register_id in DEMO_OWNER_CODES.items():
        if identities.get(name):
            await bind_owner(sessions, identities[name], codes[register_id], now)
    ids = IdAllocator(engine, "tickets", start=FIRST_ID, block=1, max_block=1)
    committee = Actor(identities.get("陈主任", "cli:demo"), "陈主任", committee=True)
    try:
        zhang, li = identities.get("张阿姨"), identities.get("李大爷")
        if zhang:
            raised = await raise_proposal(sessions, ids, openid=zhang, now=now - timedelta(days=1),
                                          text="楼道加装感应灯：晚上楼道太黑，老人上下楼容易摔倒")
            await commit(sessions, raised.unit)
            if li:
                await commit(sessions, (await cosign(sessions, ref=raised.number, openid=li, now=now)).unit)
        running = await votes.open_vote(sessions, ids, votes.VoteSpec(
            community=DEMO_COMMUNITY, title="续聘幸福物业三年", rule="art278-ordinary", options=["同意", "反对", "弃权"],
            closes_at=now + timedelta(days=5), advisory=True), actor=committee, now=now - timedelta(days=2))
        await commit(sessions, running.unit)
        if li:
            await commit(sessions, (await votes.cast_ballot(sessions, vote_ref=running.number, openid=li, choice=1,
                                                            now=now - timedelta(days=1))).unit)
        await _closed_vote(sessions, ids, committee, now, zhang)
    finally:
        await ids.settled()
    return True


async def _closed_vote(sessions, ids, committee: Actor, now: datetime, zhang: str | None) -> None:
    opened_at = now - timedelta(days=10)
    closed = await votes.open_vote(sessions, ids, votes.VoteSpec(
        community=DEMO_COMMUNITY, title="文明养犬公约", rule="simple", unit="household", options=["同意", "反对", "弃权"],
        convention="遛狗牵绳，及时清理粪便；早七点前、晚十点后不在楼道遛狗。", quorum="1/3",
        closes_at=now - timedelta(days=3)), actor=committee, now=opened_at)
    await commit(sessions, closed.unit)
    for i, (household, choice) in enumerate(PAPER.items()):
        cast = await votes.paper_ballot(sessions, vote_ref=closed.number, household=household, choice=choice,
                                        by="陈主任", actor=committee, now=opened_at + timedelta(hours=i + 1))
        await commit(sessions, cast.unit)
    if zhang:
        cast = await votes.cast_ballot(sessions, vote_ref=closed.number, openid=zhang, choice=1,
                                       now=opened_at + timedelta(days=1))
        await commit(sessions, cast.unit)
    await votes.close_vote(sessions, closed.number, now=now - timedelta(days=3))  # 公示 until 4 days from now


async def demo_numbers(engine: AsyncEngine) -> dict[str, str]:
    """The numbers a README walk-through refers to: the proposal and the two votes."""
    from storage.models import Vote

    async with sessionmaker(engine)() as session:
        proposal = (await session.execute(select(Proposal.number).where(Proposal.source == "resident")
                                          .order_by(Proposal.id).limit(1))).scalar_one_or_none()
        rows = (await session.execute(select(Vote.title, Vote.number).order_by(Vote.id))).all()
    return {"proposal": proposal or "", **{title: number for title, number in rows}}
