"""A unit of writes committed in a plain transaction of its own: how the command line and the scheduled jobs
write what a use case prepared (the webhook hands the same unit to storage.writer.Writer instead)."""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.writer import Unit, _store


async def commit(sessions: async_sessionmaker, unit: Unit) -> None:
    """All or nothing, in the Writer's order (guards, deletes, inserts, updates); raises storage.writer.Conflict
    when a guard finds its row changed, IntegrityError when a unique key refuses a row."""
    async with sessions() as session, session.begin():
        await write_in(session, unit)


async def write_in(session: AsyncSession, unit: Unit) -> None:
    """Write a unit inside the session's transaction (a use case that reads and writes in one transaction)."""
    await session.run_sync(lambda s: _store(s.connection(), [unit]))
