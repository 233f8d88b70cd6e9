"""Settings from environment variables. A missing or malformed one stops the start and is named, in one line
that says what to do (Chinese first, English after the slash, as every operator message of `linli`)."""
from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import sys

from storage.db import DEFAULT_URL, async_url, shown_url


class ConfigError(Exception):
    """A setting is missing or wrong: the message names it and says what to do."""


@dataclass(frozen=True)
class Settings:
    wechat_token: str
    wechat_appid: str = ""
    wechat_secret: str = ""
    wechat_aes_key: str | None = None
    wechat_original_id: str = ""  # the account's original id (gh_…): pushes addressed elsewhere are refused
    database_url: str = DEFAULT_URL
    redis_url: str | None = None
    wechat_api_base: str = "https://api.weixin.qq.com"
    max_body_bytes: int = 64 * 1024
    timestamp_window_s: int = 300
    rate_limit_count: int = 20
    rate_limit_window_s: int = 60
    reply_cache_s: int = 300
    attach_window_s: int = 600
    sqlite_synchronous: str = "FULL"
    wechat_template_id: str = ""  # a 办理进度 template, for notices outside the 48-hour window
    time_limits_file: str | None = None
    escalate_second_h: int = 24  # after the deadline, level-1 督办; this much later, level 2
    rating_timeout_h: int = 72  # unrated this long after 办结: closed as 未评价
    hotspot_households: int = 5
    hotspot_window_h: int = 72
    wish_limits: object = field(default=None)  # handlers.wishes.Limits, from LINLI_WISH_* (docs/wishes.md)

    def __post_init__(self) -> None:
        if self.wish_limits is None:
            from handlers.wishes import Limits

            object.__setattr__(self, "wish_limits", Limits())

    @property
    def embedded(self) -> bool:
        return async_url(self.database_url).startswith("sqlite")


# name -> (field, parser); documented in README's configuration table
_INTS = {
    "LINLI_MAX_BODY_BYTES": "max_body_bytes",
    "LINLI_TIMESTAMP_WINDOW_S": "timestamp_window_s",
    "LINLI_RATE_LIMIT_COUNT": "rate_limit_count",
    "LINLI_RATE_LIMIT_WINDOW_S": "rate_limit_window_s",
    "LINLI_REPLY_CACHE_S": "reply_cache_s",
    "LINLI_ATTACH_WINDOW_S": "attach_window_s",
    "LINLI_ESCALATE_SECOND_H": "escalate_second_h",
    "LINLI_RATING_TIMEOUT_H": "rating_timeout_h",
    "LINLI_HOTSPOT_HOUSEHOLDS": "hotspot_households",
    "LINLI_HOTSPOT_WINDOW_H": "hotspot_window_h",
}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    token = env.get("LINLI_WECHAT_TOKEN", "")
    if not token:
        raise ConfigError("LINLI_WECHAT_TOKEN 未设置：请填公众号后台“服务器配置”里的令牌(Token) / "
                          "LINLI_WECHAT_TOKEN is not set: it must match the Token in the WeChat admin console")
    if not (3 <= len(token) <= 32 and token.isascii() and token.isalnum()):
        raise ConfigError("LINLI_WECHAT_TOKEN 格式不对：令牌是 3 到 32 个英文字母或数字 / "
                          "LINLI_WECHAT_TOKEN is malformed: WeChat tokens are 3-32 letters or digits")
    values: dict = {"wechat_token": token}
    values["wechat_appid"] = appid = env.get("LINLI_WECHAT_APPID", "")
    if appid and not (appid.startswith("wx") and appid.isascii() and appid.isalnum()):
        raise ConfigError("LINLI_WECHAT_APPID 格式不对：AppID 形如 wx1234567890abcdef / "
                          "LINLI_WECHAT_APPID is malformed: an AppID looks like wx1234567890abcdef")
    values["wechat_secret"] = env.get("LINLI_WECHAT_SECRET", "")
    if original := env.get("LINLI_WECHAT_ORIGINAL_ID", ""):
        if not (original.startswith("gh_") and original.isascii() and len(original) <= 32):
            raise ConfigError("LINLI_WECHAT_ORIGINAL_ID is malformed: the original id looks like gh_0123456789ab")
        values["wechat_original_id"] = original
    if aes_key := env.get("LINLI_WECHAT_AES_KEY"):
        if len(aes_key) != 43 or not _is_base64(aes_key + "="):
            raise ConfigError("LINLI_WECHAT_AES_KEY 格式不对：消息加解密密钥(EncodingAESKey)是 43 个字母和数字 / "
                              "LINLI_WECHAT_AES_KEY is malformed: the EncodingAESKey has 43 letters and digits")
        if not appid:
            raise ConfigError("LINLI_WECHAT_APPID 未设置：安全模式(LINLI_WECHAT_AES_KEY)需要它 / "
                              "LINLI_WECHAT_APPID is not set: safe mode (LINLI_WECHAT_AES_KEY) needs it")
        values["wechat_aes_key"] = aes_key
    if env.get("DATABASE_URL"):
        values["database_url"] = database_url(env)
    if redis_url := env.get("REDIS_URL"):
        if not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("REDIS_URL 格式不对：应写成 redis://主机:端口/库号 / REDIS_URL is malformed: use redis://HOST:PORT/DB")
        values["redis_url"] = redis_url
    if base := env.get("LINLI_WECHAT_API_BASE"):
        if not base.startswith(("http://", "https://")):
            raise ConfigError("LINLI_WECHAT_API_BASE 格式不对：应写成 http(s)://主机[:端口] / "
                              "LINLI_WECHAT_API_BASE is malformed: use http(s)://HOST[:PORT]")
        values["wechat_api_base"] = base.rstrip("/")
    for name, field in _INTS.items():
        if (raw := env.get(name)) is not None:
            if not (raw.isascii() and raw.isdigit() and int(raw) > 0):
                raise ConfigError(f"{name} 格式不对：应是正整数，现在是 {raw!r} / "
                                  f"{name} is malformed: expected a positive whole number, got {raw!r}")
            values[field] = int(raw)
    values["wechat_template_id"] = env.get("LINLI_WECHAT_TEMPLATE_ID", "")
    if limits := env.get("LINLI_TIME_LIMITS_FILE"):
        from handlers.followup import TimeLimitsError, load_time_limits

        try:
            load_time_limits(limits)
        except (OSError, TimeLimitsError) as exc:
            raise ConfigError(f"LINLI_TIME_LIMITS_FILE 读不了 / is malformed: {exc}") from None
        values["time_limits_file"] = limits
    from handlers.wishes import limits_from_env

    try:
        values["wish_limits"] = limits_from_env(env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if (sync := env.get("LINLI_SQLITE_SYNCHRONOUS")) is not None:
        if sync.upper() not in ("FULL", "NORMAL"):
            raise ConfigError("LINLI_SQLITE_SYNCHRONOUS 格式不对：只能是 FULL 或 NORMAL / "
                              "LINLI_SQLITE_SYNCHRONOUS is malformed: FULL or NORMAL")
        values["sqlite_synchronous"] = sync.upper()
    return Settings(**values)


def database_url(env: Mapping[str, str] | None = None) -> str:
    """DATABASE_URL (or the embedded default), checked: a malformed one is named with what to do."""
    url = (os.environ if env is None else env).get("DATABASE_URL") or DEFAULT_URL
    if "://" in url and not url.startswith("sqlite"):
        userinfo = url.split("://", 1)[1].rpartition("@")[0]
        password = userinfo.partition(":")[2]
        if bad := sorted({c for c in password if c in "@#/?"}):
            codes = "，".join(f"{c} 写成 %{ord(c):02X}" for c in bad)
            raise ConfigError(f"DATABASE_URL 的密码里有 {' '.join(bad)}：网址里这些字符要写成百分号编码（{codes}），"
                              f"例如 postgresql://linli:p%40ss%23word@db:5432/linli / DATABASE_URL: percent-encode "
                              f"{' '.join(bad)} in the password ({', '.join(f'{c} as %{ord(c):02X}' for c in bad)})")
    try:
        async_url(url)
    except Exception as exc:
        raise ConfigError(f"DATABASE_URL 格式不对：应写成 postgresql://用户:密码@主机:端口/库名 或 sqlite:///文件 / "
                          f"DATABASE_URL is malformed: {exc}") from None
    return url


def migrated_database_url(env: Mapping[str, str] | None = None) -> str:
    """DATABASE_URL (or the embedded default), checked and migrated: what the admin commands work on. Without
    DATABASE_URL it says which file it uses: an admin who forgot the variable must not work on the wrong data."""
    from storage.migrate import upgrade

    url = database_url(env)
    say_if_embedded(url, env)
    upgrade(url)
    return url


def say_if_embedded(url: str, env: Mapping[str, str] | None = None) -> None:
    """Without DATABASE_URL, tell the operator (on stderr) which file an admin command works on."""
    if not (os.environ if env is None else env).get("DATABASE_URL"):
        print(f"未设置 DATABASE_URL，使用内嵌数据库 {shown_url(url)} / DATABASE_URL is not set: using the embedded "
              f"database", file=sys.stderr)


def _is_base64(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False
