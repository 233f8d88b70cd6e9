"""Alembic migrations, run by `linli db upgrade` and on the first start of the embedded default.

Processes that start together on a fresh database (docker compose starting three app containers, each
running `linli db upgrade`) take turns: exactly one applies the migrations, the others then find the
database up to date. PostgreSQL: a session-level advisory lock; SQLite: a lock file beside the database.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from storage.db import async_url

MIGRATION_LOCK = 0x6C696E6C69  # "linli": the advisory lock key taken while migrating PostgreSQL


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    cfg.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return cfg


def head_revision(url: str) -> str:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def upgrade(url: str, revision: str = "head") -> bool:
    """Migrate to `revision`; True when this call applied migrations, False when there was nothing to do."""
    with _exclusive(url):
        before = current_revision(url)
        command.upgrade(alembic_config(url), revision)
        return current_revision(url) != before


async def upgrade_async(url: str, revision: str = "head") -> bool:
    """Alembic's env runs its own event loop, so from async code it runs in a worker thread."""
    return await asyncio.to_thread(upgrade, url, revision)


def current_revision(url: str) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    u = make_url(async_url(url))
    if u.drivername.startswith("sqlite"):
        if not u.database or u.database == ":memory:" or not Path(u.database).exists():
            return None
        with contextlib.closing(sqlite3.connect(u.database, timeout=10)) as conn:
            try:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            except sqlite3.OperationalError:  # no such table: never migrated
                return None
        return row[0] if row else None

    async def read() -> str | None:
        engine = create_async_engine(u)
        try:
            async with engine.connect() as conn:
                found = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
                return await conn.scalar(text("SELECT version_num FROM alembic_version")) if found else None
        finally:
            await engine.dispose()

    return asyncio.run(read())


@contextlib.contextmanager
def _exclusive(url: str):
    """One migration at a time per database, across processes and machines."""
    u = make_url(async_url(url))
    if u.drivername.startswith("postgresql"):
        with _advisory_lock(u):
            yield
        return
    database = u.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, or the process dies
        yield


@contextlib.contextmanager
def _advisory_lock(u):
    """Hold PostgreSQL's advisory lock on a connection of its own for the whole migration. The connection
    lives on a private event loop that is idle meanwhile (Alembic runs its own loop in this thread); the
    server releases the lock when the session ends, also when this process is killed."""
    loop = asyncio.new_event_loop()
    engine = create_async_engine(u)
    try:
        conn = loop.run_until_complete(engine.connect())
        try:
            loop.run_until_complete(conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK}))
            yield
        finally:
            loop.run_until_complete(conn.close())
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()
