"""Engine set-up: SQLite (WAL) as the embedded default, PostgreSQL via asyncpg in production."""
from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine, create_engine as sa_create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

DEFAULT_URL = "sqlite:///linli.db"
T = TypeVar("T")
_SYNCHRONOUS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # SQLite engine -> its synchronous setting


def async_url(url: str) -> str:
    """Accept the plain URLs people write (postgresql://, sqlite:///) and pick the async driver."""
    u = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}
    if u.drivername in driver:
        u = u.set(drivername=driver[u.drivername])
    if not u.drivername.startswith(("sqlite+aiosqlite", "postgresql+asyncpg")):
        raise ValueError(f"unsupported database {u.drivername!r}: use sqlite:///FILE or postgresql://...")
    return u.render_as_string(hide_password=False)


def create_engine(url: str, *, sqlite_synchronous: str = "FULL") -> AsyncEngine:
    url = async_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 10})
        _set_pragmas(engine.sync_engine, sqlite_synchronous)
        _SYNCHRONOUS[engine.sync_engine] = sqlite_synchronous
        return engine
    # Short timeouts: the webhook must answer WeChat within 5 s even when PostgreSQL is unreachable.
    engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_timeout=3,
                                 connect_args={"timeout": 3, "command_timeout": 10})
    _ping_idle_connections(engine.sync_engine)
    return engine


def _ping_idle_connections(engine: Engine, idle_s: float = 1.0) -> None:
    """`pool_pre_ping`, but only for a connection that sat in the pool for more than idle_s. Under load a
    connection is back in use within milliseconds, and a round trip per checkout cost about 8 % of the
    webhook's throughput; after a quiet spell or an outage every connection is checked before use, as with
    pre_ping (a dead one is replaced, and the caller never sees it)."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, _proxy):
        since = record.info.pop("idle_since", None)
        if since is not None and time.monotonic() - since > idle_s:
            try:
                engine.dialect.do_ping(dbapi_conn)
            except Exception as exc:
                raise DisconnectionError() from exc  # the pool discards it and connects afresh


def create_sync_sqlite_engine(engine: AsyncEngine, busy_timeout_s: float = 10) -> Engine:
    """A synchronous engine on the same SQLite file and settings (for the writer's thread, and the reader)."""
    url = engine.url.set(drivername="sqlite")
    sync = sa_create_engine(url, connect_args={"timeout": busy_timeout_s, "check_same_thread": False})
    _set_pragmas(sync, _SYNCHRONOUS.get(engine.sync_engine, "FULL"), busy_timeout_s)
    return sync


def _set_pragmas(engine: Engine, synchronous: str, busy_timeout_s: float = 10) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):  # every pooled connection gets the same settings
        cur = dbapi_conn.cursor()
        # first: two connections may race to switch the file to WAL
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed receipt survives power loss, not only a killed process.
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


class Reader:
    """Short Core reads on the hot path: ``await read(fn, *args)`` runs ``fn(connection, *args)``.

    SQLite: on the event loop's own thread through a synchronous connection. An indexed read of a local file
    takes microseconds, and WAL readers wait for no writer; going through aiosqlite instead costs a thread
    hop per step (connect, ping, execute, fetch, close) and, under load, about a millisecond of CPU per query.
    PostgreSQL: on the async engine, as everything else."""

    BUSY_TIMEOUT_S = 0.2  # the loop waits on a locked file (a migration, say): fail fast, the resident retries

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sync = (create_sync_sqlite_engine(engine, self.BUSY_TIMEOUT_S) if engine.dialect.name == "sqlite"
                      else None)

    async def __call__(self, fn: Callable[..., T], *args) -> T:
        if self._sync is None:
            async with self._engine.connect() as conn:
                return await conn.run_sync(fn, *args)
        with self._sync.connect() as conn:
            return fn(conn, *args)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.dispose()


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)
