"""Units of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import SQLITE_WRITE


async def begin_write(session: AsyncSession) -> None:
    """Opens a write transaction unless one is open; the caller commits or rolls back.
    For a unit of work that should start only once it first needs to write."""
    if not session.in_transaction():
        await session.begin()
        await session.connection(execution_options={SQLITE_WRITE: True})


@asynccontextmanager
async def write_transaction(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """A transaction that will write: everything inside commits together or not at all.
    On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`)."""
    async with session.begin():
        await session.connection(execution_options={SQLITE_WRITE: True})
        yield session
