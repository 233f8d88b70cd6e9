"""Engine set-up: SQLite (WAL) as the embedded default, PostgreSQL via asyncpg in production."""
from __future__ import annotations

import asyncio
import contextlib
import os
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from sqlalchemy import Engine, create_engine as sa_create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine

DEFAULT_URL = "sqlite:///linli.db"
T = TypeVar("T")
PING_AFTER_IDLE_S = 1.0  # a connection unused for longer is pinged before use (the pool's and the held ones)
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


def shown_url(url: str) -> str:
    """The URL for messages and logs: the password hidden, a SQLite file as its absolute path."""
    try:
        u = make_url(url)
    except Exception:
        return "（无法解析 / unparsable）"
    if u.drivername.startswith("sqlite") and u.database and u.database != ":memory:":
        return f"sqlite:///{os.path.abspath(u.database)}"
    return u.render_as_string(hide_password=True)


def explain_error(exc: BaseException, url: str) -> str | None:
    """One line for an operator when the database cannot be used (what is wrong, and what to do), or None
    when `exc` is not such an error. `url` is the database the command was using."""
    import socket
    import sqlite3

    where = shown_url(url)
    u = make_url(url)
    networked = not u.drivername.startswith("sqlite")
    for e in _chain(exc):
        name = type(e).__name__
        message = str(e)
        if not networked and name not in ("OperationalError", "FileNotFoundError", "PermissionError"):
            continue
        if name == "InvalidCatalogNameError":
            return (f"数据库 {u.database} 不存在（{where}）：请先创建它，或改正 DATABASE_URL / "
                    f"the database does not exist: create it or correct DATABASE_URL")
        if name in ("InvalidPasswordError", "InvalidAuthorizationSpecificationError"):
            return (f"数据库拒绝了用户名或密码（{where}）：请检查 DATABASE_URL 里的用户名和密码 / "
                    f"the database refused the user or password in DATABASE_URL ({message})")
        if isinstance(e, socket.gaierror):
            return (f"找不到数据库的主机 {u.host}（{where}）：请检查 DATABASE_URL 的主机名 / "
                    f"unknown database host: check the host in DATABASE_URL")
        if isinstance(e, (ConnectionRefusedError, TimeoutError)) or (
                isinstance(e, OSError) and "connect" in message.lower()):
            return (f"连不上数据库 {u.host}:{u.port or 5432}（{where}）：数据库没有运行，或 DATABASE_URL 的主机、端口不对 / "
                    f"cannot reach the database: is it running, are host and port in DATABASE_URL right?")
        if name == "UndefinedTableError" or "no such table" in message:
            return (f"数据库还没有建表（{where}）：请先运行 linli db upgrade / "
                    f"the database was never migrated: run linli db upgrade")
        if isinstance(e, (FileNotFoundError, PermissionError)) or (
                isinstance(e, sqlite3.OperationalError) and ("unable to open" in message or "readonly" in message)):
            folder = os.path.dirname(os.path.abspath(u.database or ".")) if u.drivername.startswith("sqlite") else ""
            if folder:
                return (f"打不开数据库文件（{where}）：目录 {folder} 要存在并且可写，或改正 DATABASE_URL / "
                        f"cannot open the SQLite file: its folder must exist and be writable ({message})")
    return None


def _chain(exc: BaseException):
    """The exception, its causes and contexts, and the driver errors SQLAlchemy wraps (`orig`)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]


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


def _ping_idle_connections(engine: Engine, idle_s: float = PING_AFTER_IDLE_S) -> None:
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


class HeldConnections:
    """At most `keep` connections of an async engine, kept checked out between uses, for the hot path on
    PostgreSQL.

    A checkout from SQLAlchemy's pool and its return cost about 120 µs of CPU (two greenlet spawns, the
    pool's events, the reset), as much as the query itself; taking a held connection costs nothing. When all
    are in use a caller waits for one: a burst of reads (one event-loop turn can start a dozen) must not open
    connections beyond the pool's size, each a new server process and several milliseconds of CPU, only to
    close them again. One that sat unused for over `idle_s` is pinged first, so after an outage nobody is
    handed a dead one (as `_ping_idle_connections` does for the pool). A use that raises gives its
    connection back to the pool, which resets it, or discards it if it broke."""

    def __init__(self, engine: AsyncEngine, keep: int, idle_s: float = PING_AFTER_IDLE_S) -> None:
        self._engine, self._idle_s = engine, idle_s
        self._free = asyncio.Semaphore(keep)
        self._idle: list[tuple[AsyncConnection, float]] = []  # (connection, when it was last given back)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        async with self._free:
            conn = await self._take()
            try:
                yield conn
            except BaseException:
                await conn.close()
                raise
            self._idle.append((conn, time.monotonic()))

    async def _take(self) -> AsyncConnection:
        while self._idle:
            conn, since = self._idle.pop()
            if time.monotonic() - since <= self._idle_s:
                return conn
            try:
                await conn.run_sync(_ping)
                return conn
            except Exception:
                await conn.invalidate()  # the server went away meanwhile: try the next one, or a new one
                await conn.close()
        return await self._engine.connect()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await conn.close()


def _ping(conn) -> None:
    conn.dialect.do_ping(conn.connection.dbapi_connection)


class Reader:
    """Short Core reads on the hot path: ``await read(fn, *args)`` runs ``fn(connection, *args)``.

    SQLite: on the event loop's own thread through one synchronous connection, kept open (a checkout from
    the pool and its return cost about 100 µs of CPU in the loaded server, a third of the read). An indexed
    read of a local file is quick, and WAL readers wait for no writer; going through aiosqlite instead costs
    a thread hop per step (connect, ping, execute, fetch, close) and, under load, a millisecond of CPU.
    PostgreSQL: on held connections in autocommit mode. A read is one statement, so it needs no transaction;
    BEGIN and ROLLBACK would be two more round trips; with them and a checkout from the pool, a read cost
    about 470 µs of CPU, against 190 µs now."""

    BUSY_TIMEOUT_S = 0.2  # the loop waits on a locked file (a migration, say): fail fast, the resident retries
    KEEP = 4  # connections held for reads (a read takes about a millisecond; a burst waits its turn)

    def __init__(self, engine: AsyncEngine) -> None:
        self._sync = self._held = self._conn = None
        if engine.dialect.name == "sqlite":
            self._sync = create_sync_sqlite_engine(engine, self.BUSY_TIMEOUT_S)
        else:
            self._held = HeldConnections(engine.execution_options(isolation_level="AUTOCOMMIT"), self.KEEP)

    async def __call__(self, fn: Callable[..., T], *args) -> T:
        if self._held is not None:
            async with self._held.connection() as conn:
                return await conn.run_sync(fn, *args)
        if self._conn is None:
            self._conn = self._sync.connect()
        try:
            return fn(self._conn, *args)
        finally:
            self._conn.rollback()  # ends the read: the next one sees the latest commit, and checkpoints can run

    async def close(self) -> None:
        if self._held is not None:
            await self._held.close()
        if self._conn is not None:
            self._conn.close()
        if self._sync is not None:
            self._sync.dispose()


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)
