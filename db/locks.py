"""Per-conversation turn locks: one turn at a time per conversation, on every instance.

A turn stores the user's message, runs the model and stores the reply; the lock spans
all of it so that concurrent sends come out as question, answer, question, answer.
On PostgreSQL it is an advisory lock, shared by every instance and released if the
holder dies. SQLite is a single-process store, so an asyncio lock suffices there.

A turn on PostgreSQL straight to the server (`hold_in`) runs on one connection of the
locks' pool from start to end, its session bound to it: a session-level lock is taken in
the query of the turn's first BEGIN and let go in the query of its last COMMIT, no round
trip of their own. Behind a transaction pooler (which keeps no session between
transactions) and for the holds that answer at once (`try_hold`), the lock is a
transaction of its own on a connection of its own, held while the turn runs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import asyncpg
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from core.errors import AgentTimeout
from db import driver
from db.notify_at_commit import Carried, NotifyingConnection

#: the advisory lock `alembic upgrade` holds for its transaction (alembic/env.py), so
#: that instances starting at once migrate one after the other ("taskchat" in ASCII)
MIGRATION_LOCK_KEY = 0x7461736B63686174


class TurnHold(Protocol):
    def let_go_at_commit(self) -> None:
        """The lock may go with the COMMIT of the session's next transaction end (the
        turn's last unit): in that COMMIT's query where the lock lives on the session's
        connection; else, and if that COMMIT fails, when the hold ends."""
        ...


class _HeldApart:
    """A lock on a connection (or in a process) of its own: it goes when the hold ends."""

    def let_go_at_commit(self) -> None:
        return None


HELD_APART: TurnHold = _HeldApart()


class TurnLocks(Protocol):
    def hold(self, conversation_id: uuid.UUID) -> AbstractAsyncContextManager[None]: ...
    def hold_in(
        self, session: AsyncSession, conversation_id: uuid.UUID
    ) -> AbstractAsyncContextManager[TurnHold]:
        """The lock for a turn that runs on `session` (not in a transaction): where it
        can, the session works on the lock's connection until the block ends, and the
        lock is taken with its first statement (a wait that runs out fails that
        statement: AGENT_TIMEOUT)."""
        ...

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

    @asynccontextmanager
    async def hold_in(
        self, session: AsyncSession, conversation_id: uuid.UUID
    ) -> AsyncIterator[TurnHold]:
        if not self._may_pin(session):
            async with self.hold(conversation_id):
                yield HELD_APART
            return
        assert not session.in_transaction(), "a turn's session begins inside its lock"
        async with self._engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            assert isinstance(raw, NotifyingConnection)
            hold = _SessionLock(raw, _lock_key(conversation_id), self._wait_ms)
            sync_session = session.sync_session
            given = sync_session.bind
            sync_session.bind = connection.sync_connection
            try:
                yield hold
            except BaseException as error:
                if hold.taken.failed and _ran_out(error):
                    raise AgentTimeout() from None
                raise
            finally:
                sync_session.bind = given
                await asyncio.shield(hold.end(connection))

    def _may_pin(self, session: AsyncSession) -> bool:
        """The session's engine goes straight to the locks' server (a transaction pooler
        in between would keep no lock of a session across its transactions)."""
        bind = session.get_bind()
        ours = self._engine.sync_engine
        return (
            isinstance(bind, Engine)
            and bind.url == ours.url
            and bool(bind.get_execution_options().get(driver.DIRECT, False))
            and bool(ours.get_execution_options().get(driver.DIRECT, False))
        )


class _SessionLock:
    """A session-level advisory lock on the turn's connection: taken with its first
    BEGIN (the wait limited by `lock_timeout` for that statement alone), let go with the
    COMMIT the turn names (`let_go_at_commit`), or by a statement of its own when the
    hold ends without that (a failed turn), or with the connection, closed, when what
    the connection holds is in doubt (a wait cut off, a failed statement of ours)."""

    def __init__(self, raw: NotifyingConnection, key: int, wait_ms: int) -> None:
        self._raw = raw
        self._key = key
        # integers only, written by us: nothing from a client reaches this text
        taken = raw.carry_with_begin(
            f"SET LOCAL lock_timeout = '{wait_ms}ms'; SELECT pg_advisory_lock({key});"
            " SET LOCAL lock_timeout TO DEFAULT"
        )
        assert taken is not None
        self.taken: Carried = taken
        self._let_go: Carried | None = None

    def let_go_at_commit(self) -> None:
        if self.taken.sent:
            self._let_go = self._raw.carry_after_commit(f"SELECT pg_advisory_unlock({self._key})")

    async def end(self, connection: AsyncConnection) -> None:
        raw = self._raw
        raw.carry_with_begin(None)
        if self._let_go is not None and self._let_go.sent:
            return
        if not self.taken.sent and not self.taken.failed:
            return  # the turn never began a transaction: no lock was asked for
        if self.taken.sent and not raw.is_closed() and not connection.in_transaction():
            try:
                await raw.execute(f"SELECT pg_advisory_unlock({self._key})")
                return
            except Exception:  # noqa: S110 - the connection goes below instead
                pass
        if not raw.is_closed():
            await connection.invalidate()


def _ran_out(error: BaseException) -> bool:
    """The lock's wait ran out (`lock_timeout`), under SQLAlchemy's wrapping or not."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, asyncpg.LockNotAvailableError):
            return True
        if getattr(current, "sqlstate", None) == "55P03":
            return True
        for under in (getattr(current, "orig", None), current.__cause__):
            if isinstance(under, BaseException):
                pending.append(under)
    return False


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
    async def hold_in(
        self, session: AsyncSession, conversation_id: uuid.UUID
    ) -> AsyncIterator[TurnHold]:
        async with self.hold(conversation_id):
            yield HELD_APART

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
