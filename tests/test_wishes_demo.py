"""The demo community's wishes: two Party members, a few wishes in each state, seeded once."""
from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from handlers import wishes
from storage.community import seed_demo
from storage.db import sessionmaker
from storage.models import PartyMember, Wish
from tests.wish_support import NOW, PEOPLE


async def test_seed_demo_wishes_gives_every_state_and_runs_once(engine):
    await seed_demo(engine, PEOPLE, NOW)
    await wishes.seed_demo_wishes(engine, PEOPLE, NOW)
    await wishes.seed_demo_wishes(engine, PEOPLE, NOW)  # idempotent
    sessions = sessionmaker(engine)
    async with sessions() as session:
        statuses = Counter((await session.execute(select(Wish.status))).scalars())
        members = {m.name: m.unit for m in (await session.execute(select(PartyMember))).scalars()}
        closed = (await session.execute(select(Wish.number).where(Wish.status == "closed"))).scalar_one()
        detail = await wishes.wish_detail(session, closed)
        wall = await wishes.wall(session, PEOPLE["刘党员"])
        zhao_wall = await wishes.wall(session, wishes.DEMO_ZHAO)
        service = await wishes.my_service(session, wishes.DEMO_ZHAO)
        pending = await wishes.pending(session, PEOPLE["陈主任"])
    assert set(statuses) == {"submitted", "approved", "claimed", "fulfilled", "closed", "rejected", "withdrawn"}
    assert sum(statuses.values()) == 7
    assert members == {"刘党员": "区税务局", "赵党员": "市第一医院"}
    assert detail["claimed_by"] == ["刘党员", "赵党员"] and detail["hours"] == 1.0
    assert "老花镜" in wall.reply and "老花镜" in zhao_wall.reply and "1栋" in wall.reply and "301" not in wall.reply
    assert "陪我去社区医院" in service.reply and "（待确认）" in service.reply
    assert service.detail["minutes"] == 30  # his half of the closed wish's hour
    assert "视频通话" in pending.reply
