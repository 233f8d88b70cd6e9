"""Settings: every variable documented in README is read, and a bad one is named."""
from __future__ import annotations

import pytest

from bot.cli import main
from bot.config import ConfigError, load_settings

GOOD = {"LINLI_WECHAT_TOKEN": "spamtest", "LINLI_WECHAT_APPID": "wx2c2769f8efd9abc2",
        "LINLI_WECHAT_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}


def test_defaults_are_the_embedded_setup():
    s = load_settings({"LINLI_WECHAT_TOKEN": "abc123"})
    assert s.embedded and s.redis_url is None and s.database_url == "sqlite:///linli.db"
    assert s.max_body_bytes == 65536 and s.timestamp_window_s == 300
    assert s.wechat_api_base == "https://api.weixin.qq.com"


def test_every_variable_is_read():
    s = load_settings({**GOOD, "LINLI_WECHAT_SECRET": "sec", "DATABASE_URL": "postgresql://u@h/db",
                       "REDIS_URL": "redis://h:6379/1", "LINLI_WECHAT_API_BASE": "http://127.0.0.1:9000/",
                       "LINLI_MAX_BODY_BYTES": "1000", "LINLI_TIMESTAMP_WINDOW_S": "60",
                       "LINLI_RATE_LIMIT_COUNT": "5", "LINLI_RATE_LIMIT_WINDOW_S": "10",
                       "LINLI_REPLY_CACHE_S": "30", "LINLI_ATTACH_WINDOW_S": "120",
                       "LINLI_SQLITE_SYNCHRONOUS": "normal"})
    assert not s.embedded and s.redis_url == "redis://h:6379/1" and s.wechat_secret == "sec"
    assert s.wechat_api_base == "http://127.0.0.1:9000"
    assert (s.max_body_bytes, s.timestamp_window_s, s.rate_limit_count, s.rate_limit_window_s,
            s.reply_cache_s, s.attach_window_s, s.sqlite_synchronous) == (1000, 60, 5, 10, 30, 120, "NORMAL")


@pytest.mark.parametrize("env, named", [
    ({}, "LINLI_WECHAT_TOKEN"),
    ({"LINLI_WECHAT_TOKEN": "a b"}, "LINLI_WECHAT_TOKEN"),
    ({**GOOD, "LINLI_WECHAT_AES_KEY": "short"}, "LINLI_WECHAT_AES_KEY"),
    ({**GOOD, "LINLI_WECHAT_AES_KEY": "!" * 43}, "LINLI_WECHAT_AES_KEY"),
    ({"LINLI_WECHAT_TOKEN": "abc", "LINLI_WECHAT_AES_KEY": GOOD["LINLI_WECHAT_AES_KEY"]}, "LINLI_WECHAT_APPID"),
    ({**GOOD, "LINLI_WECHAT_APPID": "not-an-appid"}, "LINLI_WECHAT_APPID"),
    ({**GOOD, "DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
    ({**GOOD, "DATABASE_URL": "::::"}, "DATABASE_URL"),
    ({**GOOD, "REDIS_URL": "localhost:6379"}, "REDIS_URL"),
    ({**GOOD, "LINLI_WECHAT_API_BASE": "api.weixin.qq.com"}, "LINLI_WECHAT_API_BASE"),
    ({**GOOD, "LINLI_MAX_BODY_BYTES": "64k"}, "LINLI_MAX_BODY_BYTES"),
    ({**GOOD, "LINLI_RATE_LIMIT_COUNT": "0"}, "LINLI_RATE_LIMIT_COUNT"),
    ({**GOOD, "LINLI_SQLITE_SYNCHRONOUS": "OFF"}, "LINLI_SQLITE_SYNCHRONOUS"),
])
def test_a_missing_or_malformed_setting_is_named(env, named):
    with pytest.raises(ConfigError, match=named):
        load_settings(env)


def test_serve_stops_with_a_message_naming_the_setting(monkeypatch, capsys):
    monkeypatch.delenv("LINLI_WECHAT_TOKEN", raising=False)
    assert main(["serve", "--port", "0"]) == 1
    assert "LINLI_WECHAT_TOKEN" in capsys.readouterr().err
