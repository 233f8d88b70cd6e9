"""Shared fixtures. The backend follows the same variables as the service:

    pytest                                             SQLite file + in-process state (embedded default)
    DATABASE_URL=postgresql://... REDIS_URL=redis://... pytest     PostgreSQL + Redis

Tests that need PostgreSQL or Redis skip with a reason on a laptop without them, and FAIL when the
environment variable CI is set (CI must prove them, never skip them).
"""
from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url

from bot.app import create_app, SERVICE
from bot.config import Settings
from bot.signing import sign_push, xml_message
from storage.migrate import upgrade, upgrade_async
from storage.models import Base

TOKEN, APPID = "spamtest", "wx2c2769f8efd9abc2"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def unavailable(what: str, why: Exception | str) -> None:
    message = f"{what} is not reachable ({why})"
    if os.environ.get("CI"):
        pytest.fail(message + ": CI must run these tests, not skip them", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis (REDIS_URL or the local default)."""
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS)
    import redis

    try:
        redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        unavailable(f"Redis at {url}", exc)
    return url


def _pg(url: str, sql: str) -> None:
    """Run one statement outside a transaction (CREATE DATABASE can't run inside one)."""
    import asyncpg

    async def run() -> None:
        u = make_url(url)
        conn = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                                     database=u.database, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def pg_url():
    """A fresh, migrated PostgreSQL database for this test session, dropped at the end."""
    base = os.environ.get("DATABASE_URL", DEFAULT_PG)
    name = f"linli_test_{uuid.uuid4().hex[:10]}"
    try:
        _pg(base, f'CREATE DATABASE "{name}"')
    except Exception as exc:
        unavailable(f"PostgreSQL at {base}", exc)
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    _pg(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def uses_postgres() -> bool:
    return (os.environ.get("DATABASE_URL") or "").startswith(("postgresql", "postgres"))


@pytest.fixture
def database_url(request, tmp_path) -> str:
    """The backend under test: a fresh SQLite file, or the session's PostgreSQL database emptied."""
    if not uses_postgres():
        return f"sqlite:///{tmp_path}/linli.db"
    url = request.getfixturevalue("pg_url")
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    _pg(url, f"TRUNCATE {names} CASCADE")
    return url


@pytest.fixture
async def engine(database_url):
    """A migrated engine on the backend under test, for tests below the webhook."""
    from storage.db import create_engine

    await upgrade_async(database_url)
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def state_url(request) -> str | None:
    """REDIS_URL when the run is on Redis, else None (in-process state)."""
    return request.getfixturevalue("redis_url") if os.environ.get("REDIS_URL") else None


@pytest.fixture
def settings(database_url, state_url) -> Settings:
    return Settings(wechat_token=TOKEN, wechat_appid=APPID, wechat_aes_key=AES_KEY,
                    database_url=database_url, redis_url=state_url)


class Clock:
    """Wall-clock seconds that tests can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def travel(self, seconds: float) -> None:
        self.offset += seconds


async def resident_place(session, openid: str) -> tuple[int, int] | None:
    """(grid_id, household_id) of a resident whose binding is confirmed, as routing sees it."""
    from storage.community import bound_homes

    return next(((g, h) for o, g, h, _ in await bound_homes(session) if o == openid), None)


class TravellingNow:
    """The service's clock (naive UTC, its `now=`): `start` (default: real time) plus an offset tests move on."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start, self.offset = start, timedelta()

    def __call__(self) -> datetime:
        from handlers.context import utcnow

        return (self._start or utcnow()) + self.offset

    def travel(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


class WeChat:
    """Sends pushes to the webhook the way WeChat's servers do, signed (and encrypted in safe mode)."""

    def __init__(self, client: TestClient, clock: Clock) -> None:
        self.client, self.clock = client, clock
        self._msg_id = int(time.time() * 1000) * 1000

    def next_msg_id(self) -> int:
        self._msg_id += 1
        return self._msg_id

    def xml(self, openid: str, msg_type: str, msg_id: int | None = None, **fields) -> str:
        body = {"ToUserName": "gh_linli", "FromUserName": openid, "CreateTime": int(self.clock()),
                "MsgType": msg_type, **fields}
        if msg_type != "event":
            body["MsgId"] = msg_id if msg_id is not None else self.next_msg_id()
        return xml_message(body)

    async def post(self, xml: str, *, safe: bool = False, **sign):
        query, body = sign_push(TOKEN, xml, appid=APPID, aes_key=AES_KEY if safe else None,
                                timestamp=int(self.clock()), **sign)
        return await self.client.post("/wechat", params=query, data=body.encode())

    async def send(self, openid: str, text: str, *, safe: bool = False, msg_id: int | None = None) -> str:
        """A text message; returns the reply's text content."""
        resp = await self.post(self.xml(openid, "text", msg_id, Content=text), safe=safe)
        assert resp.status == 200, await resp.text()
        return reply_text(await resp.text(), safe=safe)

    async def push(self, openid: str, msg_type: str, *, safe: bool = False, **fields) -> str:
        resp = await self.post(self.xml(openid, msg_type, **fields), safe=safe)
        assert resp.status == 200, await resp.text()
        return reply_text(await resp.text(), safe=safe)


def reply_text(body: str, *, safe: bool = False) -> str:
    """The Content of a reply XML ('' for `success`)."""
    import xmltodict

    from bot.signing import aes_cipher

    if body in ("success", ""):
        return ""
    doc = xmltodict.parse(body)["xml"]
    if safe:
        doc = xmltodict.parse(aes_cipher(AES_KEY).decrypt(doc["Encrypt"], APPID))["xml"]
    return doc["Content"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(settings, clock):
    # No sender or scheduler in the background: tests drive them explicitly, so outcomes are deterministic.
    app = create_app(settings, clock=clock, migrate=True, state_prefix=f"linli-test-{uuid.uuid4().hex}:",
                     background=False)
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.fixture
def service(client):
    return client.app[SERVICE]


@pytest.fixture
def wechat(client, clock) -> WeChat:
    return WeChat(client, clock)


@pytest.fixture(scope="session", autouse=True)
def _warm_nlp():
    import nlp

    nlp.warm_up()
