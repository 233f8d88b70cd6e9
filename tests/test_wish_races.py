"""Races on wishes, as two app processes (two engines, two writers) meet them, on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from handlers import wishes
from handlers.wish_rules import Limits
from storage.db import create_engine
from storage.models import PartyMember, Staff, WishClaimer
from storage.writer import Writer
from tests.wish_support import LI, LIU, NOW, ZHANG, ZHAO, World

LIMITS = Limits(max_open=100)


@pytest.fixture
async def world(engine):
    w = World(engine, LIMITS)
    await w.setup()
    yield w
    await w.close()


@pytest.fixture
async def other_writer(database_url):
    """A second process's engine and writer on the same database."""
    engine = create_engine(database_url)
    writer = Writer(engine)
    yield engine, writer
    await writer.stop()
    await engine.dispose()


async def claimers_of(world, number) -> list[str]:
    wish = await world.wish(number)
    async with world.sessions() as session:
        return list((await session.execute(select(WishClaimer.openid).where(
            WishClaimer.wish_id == wish.id, WishClaimer.released_at.is_(None)))).scalars())


async def test_two_members_claiming_at_once_exactly_one_wins_and_the_other_is_told(world, other_writer):
    _, writer2 = other_writer
    for i in range(4):
        number = await world.approved(ZHANG if i % 2 else LI, f"心愿{i}")
        first = await world.decide(wishes.claim, LIU, number, NOW)
        second = await world.decide(wishes.claim, ZHAO, number, NOW)
        assert first.code == second.code == "claimed"  # both saw it on the wall
        results = await asyncio.gather(wishes.commit(world.writer, first), wishes.commit(writer2, second))
        assert sorted(r.code for r in results) == ["claimed", "conflict"]
        loser = next(r for r in results if r.code == "conflict")
        assert "已经被其他党员认领" in loser.reply
        winner = LIU if results[0].code == "claimed" else ZHAO
        assert await claimers_of(world, number) == [winner]
        wish = await world.wish(number)
        assert (wish.status, wish.claimer_count, wish.claim_round) == ("claimed", 1, 1)
        owner = ZHANG if i % 2 else LI
        assert sum(number in n and "已被" in n for n in await world.notices(owner)) == 1


async def test_a_burst_of_members_claiming_few_wishes(world, other_writer):
    """A wall opening: many members at once on a few wishes. Each wish gets exactly one claim, every member an
    answer (claimed or taken)."""
    _, writer2 = other_writer
    members = [f"o-burst-{i}" for i in range(12)]
    community_id = (await world.wish(await world.approved())).community_id
    async with world.engine.begin() as conn:
        await conn.execute(insert(Staff.__table__), [dict(openid=o, role="party_member", grid_id=None, is_head=False,
                                                          name=f"党员{i}", active=True, created_at=NOW)
                                                     for i, o in enumerate(members)])
        await conn.execute(insert(PartyMember.__table__), [dict(openid=o, community_id=community_id, name="",
                                                                unit="区税务局", skills="", time_offered="",
                                                                registered_at=NOW, updated_at=NOW) for o in members])
    numbers = [await world.approved(LI, f"李大爷的心愿{i}") for i in range(3)]
    decided = [await world.decide(wishes.claim, m, numbers[i % 3], NOW) for i, m in enumerate(members)]
    writers = (world.writer, writer2)
    results = await asyncio.gather(*(wishes.commit(writers[i % 2], r) for i, r in enumerate(decided)))
    assert len(results) == len(members) and all(r.reply for r in results)
    assert sum(r.code == "claimed" for r in results) == 3
    assert all(r.code in ("claimed", "conflict") for r in results)
    for number in numbers:
        assert len(await claimers_of(world, number)) == 1


async def test_a_group_join_racing_a_release_settles_one_way(world, other_writer):
    """A stale group claim: a member joins just as the job returns the wish to the wall. Either the join wins
    (it is progress: the claim stays, with both members) or the release does (the join is refused, nothing of it
    is stored) — never a joined member on a wish that is back on the wall."""
    engine2, _ = other_writer
    outcomes = set()
    for i in range(6):
        number = await world.approved(ZHANG if i % 2 else LI, f"心愿{i}")
        assert (await world.run(wishes.claim, LIU, number, NOW - timedelta(days=11), group=True)).code == "claimed"
        joining = await world.decide(wishes.join, ZHAO, number, NOW, LIMITS)
        assert joining.code == "joined"
        join_now = wishes.commit(world.writer, joining)
        release_now = wishes.chase_claims(engine2, NOW, LIMITS)
        if i == 0:  # both orders once for certain, then at once
            join, released = await join_now, await release_now
        elif i == 1:
            released = await release_now
            join = await join_now
        else:
            join, released = await asyncio.gather(join_now, release_now)
        wish = await world.wish(number)
        if join.code == "joined":
            assert released == 0
            assert (wish.status, wish.claimer_count) == ("claimed", 2)
            assert sorted(await claimers_of(world, number)) == sorted([LIU, ZHAO])
        else:
            assert join.code == "conflict" and released == 1
            assert (wish.status, wish.claimer_count) == ("approved", 0)
            assert await claimers_of(world, number) == []
            async with world.sessions() as session:
                assert ZHAO not in (await session.execute(select(WishClaimer.openid).where(
                    WishClaimer.wish_id == wish.id))).scalars().all()
        outcomes.add(join.code)
    assert outcomes == {"joined", "conflict"}  # the two fixed orders show both ways


async def test_a_full_group_refuses_the_join_that_comes_second(engine, other_writer):
    _, writer2 = other_writer
    world = World(engine, Limits(max_group=2, max_open=100))
    await world.setup()
    try:
        number = await world.claimed(LIU, group=True)
        from tests.wish_support import SUN

        a = await world.decide(wishes.join, ZHAO, number, NOW, world.limits)
        b = await world.decide(wishes.join, SUN, number, NOW, world.limits)
        results = await asyncio.gather(wishes.commit(world.writer, a), wishes.commit(writer2, b))
        assert sorted(r.code for r in results) == ["conflict", "joined"]
        assert (await world.wish(number)).claimer_count == 2 and len(await claimers_of(world, number)) == 2
    finally:
        await world.close()
