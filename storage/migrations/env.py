"""Alembic environment: runs migrations over the async engine of the configured database."""
import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from storage.models import Base

target_metadata = Base.metadata


def _run(sync_conn) -> None:
    context.configure(
        connection=sync_conn,
        target_metadata=target_metadata,
        render_as_batch=sync_conn.dialect.name == "sqlite",  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    engine = create_async_engine(context.config.get_main_option("sqlalchemy.url"))
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run `linli db upgrade` against a database")
asyncio.run(_main())
