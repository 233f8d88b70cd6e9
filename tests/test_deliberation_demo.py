"""The demo community's deliberation seed: owners, a proposal, a running vote and a closed one."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.demo import IDENTITIES
from handlers import votes as V
from handlers.deliberation_demo import demo_numbers, seed_demo_deliberation
from storage.community import seed_demo
from storage.db import sessionmaker
from storage.models import Owner, Proposal, Vote
from storage import proposals as repo

NOW = datetime(2026, 12, 1, 2, 0)


@pytest.fixture(scope="session", autouse=True)
def _warm_nlp():
    """The seed needs no classifier."""


async def test_the_demo_gets_owners_a_proposal_a_running_and_a_closed_vote(engine):
    await seed_demo(engine, IDENTITIES, NOW)
    assert await seed_demo_deliberation(engine, IDENTITIES, NOW)
    sessions = sessionmaker(engine)
    async with sessions() as s:
        bound = dict((await s.execute(select(Owner.name, Owner.openid).where(Owner.openid.is_not(None)))).all())
        assert bound == {"张阿姨": IDENTITIES["张阿姨"], "李大爷": IDENTITIES["李大爷"]}
        proposal = (await s.execute(select(Proposal).where(Proposal.source == "resident"))).scalar_one()
        assert proposal.status == "candidate" and await repo.supporters(s, proposal.id) == 2  # 2 = 5 % of 32
        statuses = dict((await s.execute(select(Vote.title, Vote.status))).all())
        owners = (await s.execute(select(func.count()).select_from(Owner))).scalar_one()
    assert owners == 31 and statuses == {"续聘幸福物业三年": "open", "文明养犬公约": "publicised"}
    numbers = await demo_numbers(engine)
    running = await V.result_document(sessions, numbers["续聘幸福物业三年"])
    assert running["advisory"] and not running["closed"] and running["ballots"] == 1
    assert running["total_headcount"] == 30  # 32 flats: 李大爷's two are one voter, and so are the developer's
    closed = await V.result_document(sessions, numbers["文明养犬公约"])
    assert closed["counts"] == {"1": 9, "2": 2, "3": 1} and closed["quorum_met"] and closed["passed"]
    assert datetime.fromisoformat(closed["objection_until"]) == NOW + timedelta(days=4)
    assert not await seed_demo_deliberation(engine, IDENTITIES, NOW)  # once
