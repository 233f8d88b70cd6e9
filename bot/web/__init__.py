"""The web face, served by the service's own aiohttp app: the committee console (/console), residents' pages
inside WeChat (/h5), the Open311 GeoReport v2 API (/open311/v2) and the static files (ECharts included).

`add_console_routes(app, get_service)` is the one call bot/app.py makes.
"""
from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp_jinja2
import aiohttp_session
import jinja2
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography import fernet
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from handlers.console_login import csrf_matches, new_csrf_token
from bot.web.settings import WebSettings, load_web_settings
from storage.models import WebSecret

HERE = Path(__file__).parent
WEB_PATHS = ("/console", "/h5")  # pages with sessions and CSRF; /wechat and /open311 go without
COOKIE = "linli_session"
LARGE_UPLOADS = {"/console/community/households"}
LARGE_UPLOAD_BYTES = 8 * 1024 * 1024
CSP = ("default-src 'self'; img-src 'self' data: http: https:; style-src 'self'; script-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'")


@dataclass
class Web:
    settings: WebSettings
    service: Callable  # () -> bot.app.Service, once started


WEB = web.AppKey("web", Web)
CSRF = web.RequestKey("csrf", str)


class _DeferredFernet(fernet.Fernet):
    """The cookie key, known once the service has started (it may live in the database)."""

    def __init__(self) -> None:  # noqa: the real key arrives through set()
        self._inner: fernet.Fernet | None = None

    def set(self, key: bytes) -> None:
        self._inner = fernet.Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, data: bytes) -> bytes:
        return self._inner.encrypt(data)

    def decrypt(self, token: bytes | str, ttl: int | None = None) -> bytes:
        return self._inner.decrypt(token, ttl)


async def _stored_key(service) -> bytes:
    """The session key kept in the database, made by the first process that needs it."""
    table = WebSecret.__table__
    fresh = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    try:
        async with service.engine.begin() as conn:
            await conn.execute(table.insert().values(name="session_key", value=fresh))
    except IntegrityError:  # made before, or by another process just now
        pass
    async with service.engine.connect() as conn:
        value = (await conn.execute(select(table.c.value).where(table.c.name == "session_key"))).scalar_one()
    return base64.urlsafe_b64decode(value.encode())


def add_console_routes(app: web.Application, get_service: Callable, settings: WebSettings | None = None) -> None:
    from bot.web import console, h5, open311

    settings = settings or load_web_settings()
    app[WEB] = Web(settings, get_service)
    key = _DeferredFernet()
    storage = EncryptedCookieStorage(key, cookie_name=COOKIE, httponly=True, samesite="Lax",
                                     secure=settings.secure_cookies, max_age=settings.session_hours * 3600)
    sessions = aiohttp_session.session_middleware(storage)

    @web.middleware
    async def pages(request: web.Request, handler):
        if not request.path.startswith(WEB_PATHS):
            return await handler(request)  # the webhook's hot path pays nothing for the pages
        return await sessions(request, _csrf_checked(handler))

    app.middlewares.append(pages)

    async def load_key(app: web.Application) -> None:
        key.set(settings.console_secret or await _stored_key(get_service()))

    app.on_startup.append(load_key)
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"),
                         autoescape=jinja2.select_autoescape(default=True, default_for_string=True))
    app.router.add_static("/static/", HERE / "static", name="static")
    console.add_routes(app)
    h5.add_routes(app)
    open311.add_routes(app)


def _csrf_checked(handler):
    async def checked(request: web.Request) -> web.StreamResponse:
        if request.path in LARGE_UPLOADS:  # the households CSV is larger than a WeChat push may be
            request = request.clone(client_max_size=LARGE_UPLOAD_BYTES)
        session = await aiohttp_session.get_session(request)
        if "csrf" not in session:
            session["csrf"] = new_csrf_token()
        request[CSRF] = session["csrf"]  # for the templates' forms
        if request.method == "POST":
            form = await request.post()
            if not csrf_matches(session.get("csrf"), form.get("_csrf")):
                raise web.HTTPForbidden(text="表单已过期，请返回刷新页面后再试。")
        response = await handler(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")  # WeChat's picture hosts refuse referrers
        return response

    return checked
