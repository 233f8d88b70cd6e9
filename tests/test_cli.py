"""The admin commands on a fresh database, as an admin types them."""
from __future__ import annotations

import pytest

from bot.cli import main


@pytest.fixture
def fresh_db(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")


def test_db_upgrade_then_report_outbox_and_staff(fresh_db, capsys):
    assert main(["db", "upgrade"]) == 0
    assert main(["report", "--month", "2026-11"]) == 0
    out = capsys.readouterr().out
    assert "响应率" in out and "满意率" in out and "按期办结率" in out
    assert main(["outbox", "dead"]) == 0 and "no dead letters" in capsys.readouterr().out
    assert main(["outbox", "retry", "7"]) == 1
    assert main(["staff", "invite", "--role", "admin", "--name", "测试"]) == 0
    code = capsys.readouterr().out.split("邀请码：")[1].split()[0]
    assert main(["staff", "list"]) == 0 and code in capsys.readouterr().out


def test_bad_month_and_bad_database_url_are_named(fresh_db, monkeypatch, capsys):
    with pytest.raises(SystemExit) as stop:  # a mistyped argument: argparse's usage error, status 2
        main(["report", "--month", "11/2026"])
    assert stop.value.code == 2 and "YYYY-MM" in capsys.readouterr().err
    monkeypatch.setenv("DATABASE_URL", "mysql://x/y")
    assert main(["db", "upgrade"]) == 1
    assert "DATABASE_URL" in capsys.readouterr().err


async def test_menu_push_installs_the_menu_file_on_the_account(tmp_path, monkeypatch):
    """`linli menu push` against the WeChat stand-in: the account ends up with bot/menu.json."""
    import asyncio
    import json

    from bot.cli import MENU_FILE
    from bot.standin import STANDIN_STATE, create_standin, start_standin

    app = create_standin(appid="wx0123456789abcdef", secret="s3cret", token="tok123", webhook_url="")
    standin = await start_standin(app)
    try:
        monkeypatch.setenv("LINLI_WECHAT_TOKEN", "tok123")
        monkeypatch.setenv("LINLI_WECHAT_APPID", "wx0123456789abcdef")
        monkeypatch.setenv("LINLI_WECHAT_SECRET", "s3cret")
        monkeypatch.setenv("LINLI_WECHAT_API_BASE", standin.url)
        monkeypatch.delenv("REDIS_URL", raising=False)
        assert await asyncio.to_thread(main, ["menu", "push"]) == 0
        assert app[STANDIN_STATE].menu == json.loads(MENU_FILE.read_text(encoding="utf-8"))
        monkeypatch.setenv("LINLI_WECHAT_SECRET", "wrong")
        assert await asyncio.to_thread(main, ["menu", "push"]) != 0
    finally:
        await standin.close()
