"""Alembic migrations, run by `linli db upgrade` and on the first start of the embedded default."""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from storage.db import async_url


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    cfg.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    with _exclusive(url):
        command.upgrade(alembic_config(url), revision)


@contextlib.contextmanager
def _exclusive(url: str):
    """Processes starting together on one SQLite file migrate one after the other (PostgreSQL's DDL is
    transactional and needs no help; SQLite's, as driven by Alembic, is not)."""
    u = make_url(async_url(url))
    database = u.database
    if not database or not u.drivername.startswith("sqlite") or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


async def upgrade_async(url: str, revision: str = "head") -> None:
    """Alembic's env runs its own event loop, so from async code it runs in a worker thread."""
    await asyncio.to_thread(upgrade, url, revision)
