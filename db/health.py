"""What `python main.py check` asks of the database: reachable, and at which migration."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


async def current_revision(engine: AsyncEngine) -> str | None:
    """The Alembic revision the database is at (``None`` before the first migration).
    Raises whatever the driver raises when the database cannot be reached."""
    from alembic.runtime.migration import MigrationContext

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
        return await connection.run_sync(read)
