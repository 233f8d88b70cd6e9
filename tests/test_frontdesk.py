"""The front desk: what is not a problem is answered or asked about, never filed; questions about the
community are answered from its settings. Measured through the router itself, on the sets of tests/data."""
from __future__ import annotations

import asyncio
import csv
from datetime import datetime
from pathlib import Path

from bot.cli import main
from handlers.router import route
from handlers.types import Inbound
from storage.models import Ticket
from tests.test_dispatch import RESIDENT, STRANGER, community  # noqa: F401

DATA = Path(__file__).parent / "data"


def rows(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as f:
        return list(csv.DictReader(f))


async def files_a_ticket(service, openid: str, text: str) -> bool:
    """Whether the router, handling this message, would store a ticket (nothing is committed)."""
    msg = Inbound(openid=openid, kind="text", received_at=datetime(2026, 12, 3), dedupe_key=f"t:{openid}", text=text)
    outcome = await route(msg, service.ctx)
    return bool(outcome.unit and any(table is Ticket.__table__ for table, _ in outcome.unit.inserts))


async def test_through_the_router_non_complaints_are_not_filed_and_complaints_are(service):
    others = [r["text"] for name in ("non_complaints.csv", "filing_fresh.csv", "filing_third.csv")
              for r in rows(name) if r.get("kind") != "complaint" and r.get("expect", "file") != "file"]
    filed = [t for i, t in enumerate(others) if await files_a_ticket(service, f"n{i}", t)]
    assert len(others) >= 300 and len(filed) / len(others) <= 0.02, filed
    complaints = [r["text"] for r in rows("community_messages.csv") if r["intent"] == "complaint" and r["label"] != "other"]
    missed = [t for i, t in enumerate(complaints) if not await files_a_ticket(service, f"c{i}", t)]
    assert len(complaints) >= 200 and len(missed) / len(complaints) <= 0.01, missed


async def test_questions_about_the_community_are_answered_from_its_settings(wechat, service, community, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", service.settings.database_url)
    command = ["community", "set", "xfl", "--phone", "010-1234 5678", "--hours", "周一至周五 9:00-17:00"]
    assert await asyncio.to_thread(main, command) == 0  # the CLI runs its own event loop
    for question in ("怎么联系居委会", "居委会几点上班"):
        reply = await wechat.send(RESIDENT, question)
        assert "010-1234 5678" in reply and "9:00-17:00" in reply, question
    assert "邻里" in await wechat.send(STRANGER, "你是谁")
    async with service.ctx.sessions() as s:
        assert (await s.execute(Ticket.__table__.select())).first() is None


async def test_menu_words_typed_out_do_what_the_menu_does(wechat, service):
    assert "使用方法" in await wechat.send("r-menu", "使用帮助")
    assert "打字告诉我" in await wechat.send("r-menu", "我要投诉")
    assert "没有反映过" in await wechat.send("r-menu", "我的诉求")


async def test_a_message_not_clearly_a_problem_is_asked_about_first(wechat, service):
    assert "是要反映问题吗" in await wechat.send("r-ask", "5号楼")
    assert "没有记成问题" in await wechat.send("r-ask", "2")
    assert "是要反映问题吗" in await wechat.send("r-ask", "天气不错")
    receipt = await wechat.send("r-ask", "1")
    assert "编号：" in receipt
    async with service.ctx.sessions() as s:
        [text] = (await s.execute(Ticket.__table__.select().with_only_columns(Ticket.text))).scalars().all()
    assert text == "天气不错"  # the words the resident confirmed, as written


async def test_every_menu_label_typed_out_does_what_its_click_does(wechat, service):
    import json

    menu = json.loads((Path(__file__).parents[1] / "bot" / "menu.json").read_text(encoding="utf-8"))
    buttons = [b for top in menu["button"] for b in top.get("sub_button", [top]) if b.get("type") == "click"]
    assert len(buttons) >= 5
    for i, button in enumerate(buttons):
        clicked = await wechat.push(f"r-click-{i}", "event", Event="CLICK", EventKey=button["key"])
        typed = await wechat.send(f"r-type-{i}", button["name"])
        assert typed == clicked, button["name"]
