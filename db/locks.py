"""Per-conversation turn locks: one turn at a time per conversation, on every instance.

A turn stores the user's message, runs the model and stores the reply; the lock spans
all of it so that concurrent sends come out as question, answer, question, answer.
On PostgreSQL it is a transaction-scoped advisory lock held on its own connection, so
it is shared by every instance and released if the holder dies. SQLite is a single-
process store, so an asyncio lock suffices there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import AgentTimeout
from db import driver

#: the advisory lock `alembic upgrade` holds for its transaction (alembic/env.py), so
#: that instances starting at once migrate one after the other ("taskchat" in ASCII)
MIGRATION_LOCK_KEY = 0x7461736B63686174


class TurnLocks(Protocol):
    def hold(self, conversation_id: uuid.UUID) -> AbstractAsyncContextManager[None]: ...
    def try_hold(self, conversation_id: uuid.UUID) -> AbstractAsyncContextManager[bool]:
        """Holds the lock if it is free now (yields True), else yields False at once."""
        ...


def _lock_key(conversation_id: uuid.UUID) -> int:
    return int.from_bytes(conversation_id.bytes[:8], "big", signed=True)


_TRY_HOLD = text("SELECT pg_try_advisory_xact_lock(:key)")


class PostgresTurnLocks:
    """A lock is a transaction of its own on a pooled connection: one round trip to take
    it (`BEGIN`, the wait's limit and the lock in one simple query) and one to let it go
    (`ROLLBACK`: it wrote nothing). Outside SQLAlchemy's transaction handling, which would
    send `BEGIN` alone first; the pool gets the connection back with no transaction."""

    def __init__(self, engine: AsyncEngine, wait_seconds: float) -> None:
        self._engine = engine
        self._wait_ms = int(wait_seconds * 1000)

    @asynccontextmanager
    async def hold(self, conversation_id: uuid.UUID) -> AsyncIterator[None]:
        # integers only, written by us: nothing from a client reaches this text
        take = (
            f"BEGIN; SELECT set_config('lock_timeout', '{self._wait_ms}ms', true),"
            f" pg_advisory_xact_lock({_lock_key(conversation_id)})"
        )
        holding = False
        try:
            async with driver.raw_transaction(self._engine, take):
                holding = True
                yield
        except asyncpg.LockNotAvailableError:
            if holding:  # not the wait's: the turn's own
                raise
            raise AgentTimeout() from None

    @asynccontextmanager
    async def try_hold(self, conversation_id: uuid.UUID) -> AsyncIterator[bool]:
        async with self._engine.connect() as connection, connection.begin():
            held = await connection.scalar(_TRY_HOLD, {"key": _lock_key(conversation_id)})
            yield bool(held)


class LocalTurnLocks:
    def __init__(self) -> None:
        self._locks: dict[uuid.UUID, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, conversation_id: uuid.UUID) -> AsyncIterator[None]:
        lock, users = self._locks.get(conversation_id, (asyncio.Lock(), 0))
        self._locks[conversation_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[conversation_id]
            if users == 1:
                del self._locks[conversation_id]
            else:
                self._locks[conversation_id] = (lock, users - 1)

    @asynccontextmanager
    async def try_hold(self, conversation_id: uuid.UUID) -> AsyncIterator[bool]:
        taken = self._locks.get(conversation_id)
        if taken is not None and taken[0].locked():
            yield False
            return
        async with self.hold(conversation_id):
            yield True


def build_turn_locks(engine: AsyncEngine, wait_seconds: float) -> TurnLocks:
    if engine.dialect.name == "postgresql":
        return PostgresTurnLocks(engine, wait_seconds)
    return LocalTurnLocks()
