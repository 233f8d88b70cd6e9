"""Settings of the web face, from environment variables (a malformed one stops the start, named)."""
from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass

from bot.config import ConfigError

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class WebSettings:
    public_url: str = DEFAULT_PUBLIC_URL  # what links (login, H5, OAuth redirects) start with
    console_secret: bytes | None = None  # the session cookies' key; None: one kept in the database
    session_hours: int = 12  # a console session ends this long after login
    oauth_base: str = "https://open.weixin.qq.com"  # where WeChat's web OAuth page is (the stand-in in the demo)

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")


def load_web_settings(env: Mapping[str, str] | None = None) -> WebSettings:
    env = os.environ if env is None else env
    values: dict = {}
    if url := env.get("LINLI_PUBLIC_URL"):
        if not url.startswith(("http://", "https://")):
            raise ConfigError("LINLI_PUBLIC_URL is malformed: use http(s)://HOST[:PORT][/PATH]")
        values["public_url"] = url.rstrip("/")
    if secret := env.get("LINLI_CONSOLE_SECRET"):
        try:
            key = base64.urlsafe_b64decode(secret.encode())
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise ConfigError("LINLI_CONSOLE_SECRET is malformed: 32 bytes in URL-safe base64 (44 characters), e.g. "
                              "python3 -c 'import secrets,base64;print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())'")
        values["console_secret"] = key
    if (hours := env.get("LINLI_CONSOLE_SESSION_H")) is not None:
        if not (hours.isascii() and hours.isdigit() and int(hours) > 0):
            raise ConfigError(f"LINLI_CONSOLE_SESSION_H is malformed: expected a positive whole number, got {hours!r}")
        values["session_hours"] = int(hours)
    if base := env.get("LINLI_WECHAT_OAUTH_BASE"):
        if not base.startswith(("http://", "https://")):
            raise ConfigError("LINLI_WECHAT_OAUTH_BASE is malformed: use http(s)://HOST[:PORT]")
        values["oauth_base"] = base.rstrip("/")
    return WebSettings(**values)
