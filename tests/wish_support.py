"""A demo community with residents, reviewers and Party members, and a way to run wish use cases on it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select

from handlers import wishes
from handlers.wish_rules import Limits
from storage.community import seed_demo
from storage.db import sessionmaker
from storage.ids import IdAllocator
from storage.models import Community, Outbox, Staff, Wish
from storage.writer import Writer

NOW = datetime(2026, 11, 2, 2, 0)  # 10:00 in China
PEOPLE = {
    "张阿姨": "demo-resident-zhang", "李大爷": "demo-resident-li", "王网格员": "demo-worker-wang",
    "陈主任": "demo-committee-chen", "刘党员": "demo-party-liu",
}
ZHANG, LI, CHEN, LIU = PEOPLE["张阿姨"], PEOPLE["李大爷"], PEOPLE["陈主任"], PEOPLE["刘党员"]
ZHAO, SUN, QIAN, STRANGER = "o-party-zhao", "o-party-sun", "o-party-qian", "o-stranger"  # QIAN lives elsewhere


class World:
    def __init__(self, engine, limits: Limits = Limits()) -> None:
        self.engine, self.limits = engine, limits
        self.sessions = sessionmaker(engine)
        self.writer = Writer(engine)
        self.ids = IdAllocator(engine, "tickets", start=10000)

    async def setup(self) -> None:
        await seed_demo(self.engine, PEOPLE, NOW)
        async with self.engine.begin() as conn:
            await conn.execute(insert(Community.__table__).values(code="elsewhere", name="别处社区"))
            await conn.execute(insert(Staff.__table__), [
                dict(openid=o, role="party_member", grid_id=None, is_head=False, name=n, active=True, created_at=NOW)
                for o, n in ((ZHAO, "赵党员"), (SUN, "孙党员"), (QIAN, "钱党员"))])
        await self.register(LIU, "区税务局")
        await self.register(ZHAO, "市第一医院")
        await self.register(SUN, "区税务局")
        await self.register(QIAN, "某公司", community="别处社区")

    async def close(self) -> None:
        await self.writer.stop()
        await self.ids.settled()

    async def run(self, use_case, *args, **kw) -> wishes.WishResult:
        """Run a use case and commit what it decided, as the webhook would."""
        return await wishes.commit(self.writer, await self.decide(use_case, *args, **kw))

    async def decide(self, use_case, *args, **kw) -> wishes.WishResult:
        """Only decide (nothing written yet): for races, commit later."""
        async with self.sessions() as session:
            return await use_case(session, *args, **kw)

    async def register(self, openid: str, unit: str, community: str = "幸福里社区"):
        result = await self.run(wishes.register, openid, NOW, unit=unit, community=community)
        assert result.code == "registered", result
        return result

    async def submit(self, openid: str = ZHANG, text: str = "想请人帮忙换一下厨房的灯泡", now: datetime = NOW):
        return await self.run(wishes.submit, self.ids, openid, text, now, self.limits)

    async def approved(self, openid: str = ZHANG, text: str = "想请人帮忙换一下厨房的灯泡", kind: str = "service") -> str:
        number = (await self.submit(openid, text)).number
        assert (await self.run(wishes.review, CHEN, number, NOW, approve=True, kind=kind)).code == "approved"
        return number

    async def claimed(self, by: str = LIU, group: bool = False, **kw) -> str:
        number = await self.approved(**kw)
        assert (await self.run(wishes.claim, by, number, NOW, group=group)).code == "claimed"
        return number

    async def wish(self, number: str) -> Wish:
        async with self.sessions() as session:
            return (await session.execute(select(Wish).where(Wish.number == number))).scalar_one()

    async def notices(self, openid: str | None = None) -> list[str]:
        async with self.engine.connect() as conn:
            query = select(Outbox.openid, Outbox.text).order_by(Outbox.id)
            return [t for o, t in await conn.execute(query) if openid is None or o == openid]

    async def detail(self, number: str) -> dict:
        async with self.sessions() as session:
            return await wishes.wish_detail(session, number)
