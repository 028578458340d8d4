"""Units of work: everything inside one commits together or not at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db.driver import DIRECT
from db.engine import SQLITE_WRITE


@asynccontextmanager
async def write_transaction(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """A transaction that will write, opened now. On SQLite it takes the write lock up
    front (`BEGIN IMMEDIATE`)."""
    async with session.begin():
        await session.connection(execution_options={SQLITE_WRITE: True})
        yield session


def read_options(session: AsyncSession) -> dict[str, Any]:
    """The connection options of reads that need no common snapshot. On PostgreSQL
    without a pooler in between: autocommit, one round trip a statement, no BEGIN or
    COMMIT (each statement reads the newest snapshot). Behind a transaction pooler a
    statement outside a transaction may be prepared on one server connection and run on
    another: there, and on SQLite (where a read begins nothing anyway), none."""
    if session.get_bind().get_execution_options().get(DIRECT, False):
        return _AUTOCOMMIT
    return _NO_OPTIONS


_AUTOCOMMIT: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}
_NO_OPTIONS: dict[str, Any] = {}


@asynccontextmanager
async def read_transaction(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Reads on `read_options`."""
    async with session.begin():
        await session.connection(execution_options=read_options(session))
        yield session


class UnitOfWork:
    """A write transaction that opens at its first use, not before: a turn's unit (tool
    changes and the reply) must not hold a lock while the model thinks before its first
    tool call (on SQLite that lock is the whole database's). Begin, savepoints, commit and
    rollback all live here; `unit_of_work` decides which of the last two happens."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def session(self) -> AsyncSession:
        """The session, inside the unit's transaction (begun on first call)."""
        if not self._session.in_transaction():
            await self._session.begin()
            await self._session.connection(execution_options={SQLITE_WRITE: True})
        return self._session

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[AsyncSession]:
        """A part of the unit that can fail alone (one tool call) without undoing the rest."""
        session = await self.session()
        async with session.begin_nested():
            yield session

    async def _commit(self) -> None:
        await (await self.session()).commit()

    async def _rollback(self) -> None:
        if self._session.in_transaction():
            await self._session.rollback()


@asynccontextmanager
async def unit_of_work(session: AsyncSession) -> AsyncIterator[UnitOfWork]:
    """Commits when the block ends normally; rolls back on any error or cancellation
    (shielded, so a cancelled turn still leaves its connection clean)."""
    work = UnitOfWork(session)
    try:
        yield work
    except BaseException:
        await asyncio.shield(work._rollback())
        raise
    await work._commit()
