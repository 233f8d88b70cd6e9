"""The deliberation commands as a reviewer's script drives them: JSON on the last line, exit codes."""
from __future__ import annotations

import asyncio
import json
import os

import pytest

from bot.cli import main
from handlers.owners import bind_owner
from handlers.proposals import raise_proposal
from storage.commit import commit
from storage.db import create_engine, sessionmaker
from storage.ids import IdAllocator
from tests.deliberation_support import HOUSEHOLDS, LI, NOW, OWNERS


@pytest.fixture(scope="session", autouse=True)
def _warm_nlp():
    """The commands need no classifier."""


@pytest.fixture
def db(tmp_path, monkeypatch, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    (tmp_path / "h.csv").write_text(HOUSEHOLDS, encoding="utf-8")
    (tmp_path / "o.csv").write_text(OWNERS, encoding="utf-8")
    return tmp_path


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_an_art278_vote_from_the_command_line(db, capsys):
    assert main(["import", "households", str(db / "h.csv")]) == 0
    assert main(["import", "owners", str(db / "o.csv")]) == 0
    assert "业主 新增 4" in capsys.readouterr().out
    assert main(["vote", "open", "--community", "c", "--title", "续聘物业", "--rule", "art278-ordinary",
                 "--options", "同意,反对,弃权", "--closes", "2099-01-01T18:00", "--secret"]) == 0
    opened = last_json(capsys)
    vote_id, number = opened["id"], opened["number"]
    assert number.startswith(str(vote_id)) and len(number) == len(str(vote_id)) + 1
    assert main(["vote", "bulletin", number, "--json"]) == 1  # not before the close
    assert "表决结束后" in capsys.readouterr().out
    for owner, choice in (("P1", 1), ("P3", 1), ("DEV", 2)):
        assert main(["vote", "paper", str(vote_id), "--owner", owner, "--choice", str(choice), "--by", "陈主任"]) == 0
        assert "凭证：" in capsys.readouterr().out
    assert main(["vote", "paper", number, "--owner", "NOBODY", "--choice", "1", "--by", "陈主任"]) == 1
    capsys.readouterr()
    assert main(["vote", "result", number, "--json"]) == 0
    running = last_json(capsys)
    assert running["closed"] is False and running["counts"] is None and running["ballots"] == 3
    assert main(["vote", "participation", number]) == 0
    assert "2栋 未投：2栋204" in capsys.readouterr().out
    assert main(["vote", "close", number, "--by", "陈主任"]) == 0
    capsys.readouterr()
    assert main(["vote", "result", str(vote_id), "--json"]) == 0
    result = last_json(capsys)
    for key in ("rule", "advisory", "closed", "ballots", "counts", "total_area", "total_headcount",
                "participating_area", "participating_headcount", "approving_area", "approving_headcount",
                "quorum_met", "passed"):
        assert key in result
    assert (result["rule"], result["closed"], result["ballots"], result["counts"]) == (
        "art278-ordinary", True, 3, {"1": 2, "2": 1, "3": 0})
    assert (result["total_area"], result["participating_area"], result["approving_area"]) == (
        "410.00", "340.00", "240.00")
    assert result["quorum_met"] and result["passed"] and result["advisory"] is False
    assert main(["vote", "bulletin", number, "--json"]) == 0
    bulletin = last_json(capsys)
    assert sorted(b["choice"] for b in bulletin["ballots"]) == [1, 1, 2]
    assert all(set(b) == {"receipt", "choice"} for b in bulletin["ballots"])  # secret: names nobody
    assert main(["vote", "close", number]) == 1  # once
    assert "已经结束" in capsys.readouterr().out
    assert main(["vote", "paper", number, "--owner", "P2", "--choice", "1", "--by", "陈主任"]) == 1
    assert "截止" in capsys.readouterr().out
    assert main(["vote", "objections", number]) == 0 and "没有异议" in capsys.readouterr().out
    assert main(["vote", "finalise", number]) == 1 and "公示期" in capsys.readouterr().out


def test_proposal_meeting_vote_task_and_convention_commands(db, capsys):
    main(["import", "households", str(db / "h.csv")])
    main(["import", "owners", str(db / "o.csv")])
    main(["deliberation", "settings", "--community", "c", "--objection-days", "0", "--comments-per-day", "3"])
    assert "objection_days = 0" in capsys.readouterr().out
    assert main(["vote", "open", "--community", "c", "--title", "文明养宠公约", "--rule", "simple", "--unit",
                 "household", "--options", "同意,反对", "--convention", "遛狗牵绳", "--quorum", "1/2"]) == 0
    vote = last_json(capsys)
    assert main(["proposal", "list", "--community", "c"]) == 0 and "表决中" in capsys.readouterr().out
    for code in ("HHXY0101", "HHXY0102", "HHXY0201", "HHXY0204"):
        assert main(["vote", "paper", vote["number"], "--household", code, "--choice", "1", "--by", "王网格员"]) == 0
    assert main(["vote", "close", vote["number"]]) == 0
    assert last_json(capsys)["passed"]
    assert main(["vote", "finalise", vote["number"]]) == 0
    assert main(["convention", "list", "--community", "c"]) == 0
    assert f"文明养宠公约（表决 编号 {vote['number']}" in capsys.readouterr().out
    proposal = str(vote["proposal"])
    assert main(["proposal", "task", proposal, "--body", "property", "--text", "小区门口贴公约",
                 "--deadline", "2099-01-01T12:00"]) == 0
    assert "已派出任务" in capsys.readouterr().out
    assert main(["proposal", "complete", proposal]) == 0
    assert main(["proposal", "close", proposal]) == 0
    assert main(["proposal", "show", proposal]) == 0
    shown = capsys.readouterr().out
    assert "已评价" in shown and "vote_final" in shown and "task_created" in shown
    assert main(["proposal", "accept", proposal]) == 1  # evaluated: nothing more to accept
    assert main(["meeting", "schedule", "--proposal", proposal, "--at", "2099-01-01T19:00", "--place", "活动室"]) == 1
    assert main(["captain", "add", "--openid", "x", "--community", "c", "--building", "9栋"]) == 1
    assert main(["captain", "add", "--openid", "x", "--community", "c", "--building", "2栋"]) == 0


def test_meeting_options_become_the_votes_options(db, capsys):
    main(["import", "households", str(db / "h.csv")])
    main(["import", "owners", str(db / "o.csv")])
    number = asyncio.run(_raised_by_li())  # residents raise proposals in the chat, not on the command line
    assert main(["proposal", "accept", number, "--by", "陈主任"]) == 0
    assert main(["meeting", "schedule", "--proposal", number, "--at", "2099-01-01T19:00", "--place", "活动室"]) == 0
    meeting = capsys.readouterr().out.split("编号：")[-1].split()[0]
    assert main(["meeting", "minutes", meeting, "--text", "同意装两盏"]) == 0
    assert main(["meeting", "options", meeting, "--options", "装两盏,装四盏,不装"]) == 0
    assert main(["vote", "open", "--community", "c", "--title", "装几盏路灯", "--rule", "simple",
                 "--proposal", number]) == 0
    vote = last_json(capsys)
    assert main(["vote", "close", vote["number"]]) == 0
    assert last_json(capsys)["options"] == ["装两盏", "装四盏", "不装"]


async def _raised_by_li() -> str:
    engine = create_engine(os.environ["DATABASE_URL"])
    sessions, ids = sessionmaker(engine), IdAllocator(engine, "tickets", start=10000, block=1, max_block=1)
    try:
        await bind_owner(sessions, LI, "LI0003", NOW)
        done = await raise_proposal(sessions, ids, openid=LI, text="东门加装路灯", now=NOW)
        await commit(sessions, done.unit)
        return done.number
    finally:
        await ids.settled()
        await engine.dispose()


def test_bench_vote_times_the_tally(capsys):
    assert main(["bench", "vote", "--ballots", "2000", "--skip-db"]) == 0
    report = last_json(capsys)
    assert report["ballots"] == 2000 and report["tally_s"] < 5
