"""Alembic environment: async engine, the direct URL from taskchat's settings unless the
caller passed one (`config.attributes["database_url"]`).

Instances starting at once all run `upgrade`: on PostgreSQL the whole upgrade is one
transaction that first takes an advisory lock, so they run one after the other and the
later ones find the database already at head."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.engine import Connection

from alembic import context
from core.config import Settings
from core.database_url import DatabaseUrl, as_database_url
from db.engine import SQLITE_WRITE, create_engine
from db.locks import MIGRATION_LOCK_KEY
from db.models import Base

config = context.config
target_metadata = Base.metadata


def _database_url() -> DatabaseUrl:
    url = config.attributes.get("database_url")
    return as_database_url(url) if url else Settings().direct_database


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # held until the upgrade's transaction ends (SQLite: BEGIN IMMEDIATE serialises)
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_database_url())
    try:
        async with engine.connect() as connection:
            # one transaction for the whole upgrade, on SQLite too (see db/engine.py)
            connection = await connection.execution_options(**{SQLITE_WRITE: True})
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    context.configure(
        url=_database_url().render(), target_metadata=target_metadata, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
