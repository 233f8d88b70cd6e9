"""Operator errors are sentences: one line naming the setting and what to do, exit status 1, no traceback
(`--debug` shows it); concurrent `linli db upgrade` on a fresh database migrates exactly once; every `linli`
command speaks Chinese first."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot import demo
from bot.cli import build_parser, main
from tests.conftest import DEFAULT_PG, _pg, unavailable, uses_postgres

REPO = Path(__file__).resolve().parents[1]
CHINESE = re.compile("[\u4e00-\u9fff]")
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("LINLI_", "DATABASE_URL", "REDIS_URL"))}


def linli(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *argv], cwd=cwd, env={**BASE_ENV, "PYTHONPATH": str(REPO),
                          **env}, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def fresh_pg():
    """A PostgreSQL database that exists and was never migrated (dropped afterwards)."""
    base = os.environ.get("DATABASE_URL") if uses_postgres() else DEFAULT_PG
    name = f"linli_fresh_{uuid.uuid4().hex[:10]}"
    try:
        _pg(base, f'CREATE DATABASE "{name}"')
    except Exception as exc:
        unavailable(f"PostgreSQL at {base}", exc)
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    _pg(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


TOKEN = {"LINLI_WECHAT_TOKEN": "abc123"}


@pytest.mark.parametrize("argv, env, named", [
    (["serve"], {}, "LINLI_WECHAT_TOKEN"),
    (["serve"], {**TOKEN, "LINLI_MAX_BODY_BYTES": "64k"}, "LINLI_MAX_BODY_BYTES"),
    (["db", "upgrade"], {"DATABASE_URL": "postgresql://linli:p@ss@db:5432/linli"}, "%40"),
    (["db", "upgrade"], {"DATABASE_URL": "postgresql://linli:pa#ss@db:5432/linli"}, "%23"),
    (["db", "upgrade"], {"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
    (["report", "--month", "2026-11"], {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/linli"}, "连不上数据库"),
    (["staff", "list"], {"DATABASE_URL": "postgresql://postgres@no-such-host.invalid/linli"}, "找不到数据库的主机"),
    (["staff", "list"], {"DATABASE_URL": "sqlite:///no/such/folder/linli.db"}, "要存在并且可写"),
    (["serve", "--port", "0"], {**TOKEN, "REDIS_URL": "redis://127.0.0.1:1/0"}, "REDIS_URL"),
    (["menu", "push"], TOKEN, "LINLI_WECHAT_APPID"),
])
def test_an_operator_error_is_one_line_with_status_1(tmp_path, argv, env, named):
    run = linli(*argv, cwd=tmp_path, **env)
    lines = [line for line in run.stderr.splitlines() if line.strip() and "DATABASE_URL is not set" not in line]
    assert run.returncode == 1, run.stderr
    assert len(lines) == 1 and named in lines[0] and CHINESE.search(lines[0]), run.stderr
    assert "Traceback" not in run.stderr
    debug = linli("--debug", *argv, cwd=tmp_path, **env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and named in debug.stderr.splitlines()[-1]


def test_a_missing_postgresql_database_and_one_never_migrated(tmp_path, fresh_pg):
    missing = make_url(fresh_pg).set(database=fresh_pg.rsplit("/", 1)[1] + "_nope").render_as_string(False)
    run = linli("report", "--month", "2026-11", cwd=tmp_path, DATABASE_URL=missing)
    assert run.returncode == 1 and "不存在" in run.stderr and "Traceback" not in run.stderr
    run = linli("serve", "--port", "0", cwd=tmp_path, DATABASE_URL=fresh_pg, **TOKEN)
    assert run.returncode == 1 and "linli db upgrade" in run.stderr and "还没有建表" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_report_without_database_url_says_which_database_it_read(tmp_path):
    run = linli("report", "--month", "2026-11", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "未设置 DATABASE_URL" in run.stderr and str(tmp_path / "linli.db") in run.stderr
    assert f"数据来源 / database: sqlite:///{tmp_path / 'linli.db'}" in run.stdout


def test_concurrent_upgrades_of_a_fresh_database_migrate_exactly_once(tmp_path, request):
    """Several real processes at once, as compose starts three app containers: all succeed, one migrates."""
    url = request.getfixturevalue("fresh_pg") if uses_postgres() else f"sqlite:///{tmp_path}/linli.db"
    command = [sys.executable, "-m", "bot.cli", "db", "upgrade"]
    env = {**BASE_ENV, "PYTHONPATH": str(REPO), "DATABASE_URL": url}
    procs = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0] * 4, [err for _, _, err in results]
    outs = [out for _, out, _ in results]
    assert sum("数据库已迁移到" in out for out in outs) == 1, outs
    assert sum("已是最新版本" in out for out in outs) == 3, outs
    again = linli("db", "upgrade", cwd=tmp_path, DATABASE_URL=url)
    assert again.returncode == 0 and "已是最新版本" in again.stdout


def test_demo_fresh_starts_from_an_empty_database(tmp_path, monkeypatch, capsys):
    db = tmp_path / "linli-demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").write_text("old")
    seen = {}

    async def fake_run_demo(*, safe, port, db_file):
        seen["left"] = sorted(p.name for p in tmp_path.iterdir())
        return 0

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    assert main(["demo", "--fresh", "--db", str(db)]) == 0
    assert seen["left"] == [] and "已删除旧的演示数据" in capsys.readouterr().out
    assert demo.remove_database(str(db)) == []
    Path(f"{db}-wal").write_text("old")
    assert main(["demo", "--db", str(db)]) == 0 and seen["left"] == ["linli-demo.db-wal"]  # kept without --fresh


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield path + (name,), helps.get(name) or ""
                yield from _commands(sub, path + (name,))


def test_every_command_explains_itself_in_chinese():
    commands = list(_commands(build_parser()))
    assert len(commands) >= 15
    assert [" ".join(path) for path, text in commands if not CHINESE.search(text)] == []
