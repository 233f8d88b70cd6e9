"""`linli wish review|show` and `linli party hours`, as a reviewer's script drives them."""
from __future__ import annotations

import asyncio
import json

import pytest

from bot.cli import main
from handlers import wishes
from tests.wish_support import LI, LIU, NOW, ZHANG, ZHAO, World


@pytest.fixture
async def world(engine, database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    w = World(engine)
    await w.setup()
    yield w
    await w.close()


async def linli(capsys, *argv) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


async def test_review_approve_then_show(world, capsys):
    number = (await world.submit(ZHANG, "想请人帮忙换灯泡")).number
    code, out, _ = await linli(capsys, "wish", "show", number, "--json")
    shown = last_json(out)
    assert code == 0 and (shown["status"], shown["claimed_by"], shown["hours"]) == ("submitted", [], 0)
    code, out, _ = await linli(capsys, "wish", "review", number, "--approve", "--kind", "public",
                               "--text", "一位老人想请人换灯泡")
    assert code == 0 and number in out
    wish = await world.wish(number)
    assert (wish.status, wish.kind, wish.public_text, wish.reviewed_by) == ("approved", "public", "一位老人想请人换灯泡",
                                                                            "cli")
    assert any("审核通过" in n for n in await world.notices(ZHANG))  # the resident is told, as from the chat
    # a second review of the same wish is refused
    code, _, err = await linli(capsys, "wish", "review", number, "--reject", "--reason", "重复")
    assert code == 1 and "not_now" in err

    await world.run(wishes.claim, LIU, number, NOW, group=True)
    await world.run(wishes.join, ZHAO, number, NOW)
    await world.run(wishes.fulfil, ZHAO, number, "换好了 用时2小时", NOW)
    shown = last_json((await linli(capsys, "wish", "show", number, "--json"))[1])
    assert (shown["status"], shown["claimed_by"], shown["hours"]) == ("fulfilled", ["刘党员", "赵党员"], 0)
    await world.run(wishes.confirm, ZHANG, number, NOW)
    wish_id = str((await world.wish(number)).id)
    shown = last_json((await linli(capsys, "wish", "show", wish_id, "--json"))[1])  # the bare id works too
    assert (shown["status"], shown["claimed_by"], shown["hours"]) == ("closed", ["刘党员", "赵党员"], 2.0)
    assert shown["number"] == number and "confirmed" in [e["action"] for e in shown["events"]]
    code, out, _ = await linli(capsys, "wish", "show", number)
    assert code == 0 and "已圆梦" in out and "刘党员、赵党员" in out


async def test_review_reject_needs_a_reason_and_tells_the_resident(world, capsys):
    number = (await world.submit(LI, "想要一台新电视")).number
    code, _, err = await linli(capsys, "wish", "review", number, "--reject")
    assert code == 1 and "--reason" in err
    code, _, _ = await linli(capsys, "wish", "review", number, "--reject", "--reason", "不属于微心愿范围")
    assert code == 0
    assert last_json((await linli(capsys, "wish", "show", number, "--json"))[1])["status"] == "rejected"
    assert "不属于微心愿范围" in (await world.notices(LI))[-1]


async def test_unknown_ids_and_bad_arguments(world, capsys):
    assert (await linli(capsys, "wish", "show", "999999", "--json"))[0] == 1
    assert (await linli(capsys, "wish", "review", "abc", "--approve"))[0] == 1
    with pytest.raises(SystemExit):
        await asyncio.to_thread(main, ["wish", "review", "100009", "--approve", "--reject", "--reason", "x"])
    with pytest.raises(SystemExit):
        await asyncio.to_thread(main, ["wish", "review", "100009", "--approve", "--kind", "gold"])
    assert (await linli(capsys, "party", "hours", "--month", "11/2026"))[0] == 2


async def test_party_hours_json(world, capsys):
    number = await world.claimed(LIU, group=True)
    await world.run(wishes.join, ZHAO, number, NOW)
    await world.run(wishes.fulfil, LIU, number, "陪老人看病 用时3小时", NOW)
    await world.run(wishes.confirm, ZHANG, number, NOW)
    code, out, _ = await linli(capsys, "party", "hours", "--month", NOW.strftime("%Y-%m"), "--json")
    report = last_json(out)
    assert code == 0
    members = {m["name"]: (m["unit"], m["hours"], m["wishes"]) for m in report["members"]}
    assert members["刘党员"] == ("区税务局", 1.5, 1) and members["赵党员"] == ("市第一医院", 1.5, 1)
    assert members["孙党员"] == ("区税务局", 0, 0)
    units = {u["unit"]: (u["hours"], u["wishes"]) for u in report["units"]}
    assert units["区税务局"] == (1.5, 1) and units["市第一医院"] == (1.5, 1)
    assert {m["name"] for m in report["idle_this_quarter"]} == {"孙党员", "钱党员"}
    assert "本季度" in out and "孙党员" in out
    code, out, _ = await linli(capsys, "party", "hours", "--month", "2027-01", "--json")
    assert all(m["hours"] == 0 for m in last_json(out)["members"])
