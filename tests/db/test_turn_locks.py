"""Turn locks on PostgreSQL: a wait that runs out is AGENT_TIMEOUT, told by its SQLSTATE."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import AgentTimeout
from db.engine import create_engine
from db.locks import PostgresTurnLocks


async def test_a_turn_lock_wait_that_runs_out_is_agent_timeout(
    database_urls: dict[str, str],
) -> None:
    engine = create_engine(database_urls["postgres"], pool_size=2)
    locks = PostgresTurnLocks(engine, wait_seconds=0.2)
    conversation_id = uuid.uuid4()
    try:
        async with _held_elsewhere(locks, conversation_id):
            with pytest.raises(AgentTimeout):
                async with locks.hold(conversation_id):
                    pass
            # another conversation is not blocked by it
            async with locks.hold(uuid.uuid4()):
                pass
    finally:
        await engine.dispose()


@asynccontextmanager
async def _held_elsewhere(
    locks: PostgresTurnLocks, conversation_id: uuid.UUID
) -> AsyncIterator[None]:
    """The lock, held by another task until the block ends."""
    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold(conversation_id):
            held.set()
            await release.wait()

    task = asyncio.create_task(holder())
    try:
        await _until_held(task, held)
        yield
    finally:
        release.set()
        await task


async def _until_held(holder: asyncio.Task[None], held: asyncio.Event) -> None:
    """Until the holder holds the lock; what ended it if it ends first (waiting on `held`
    alone would hang the test instead of failing it)."""
    waiting = asyncio.ensure_future(held.wait())
    await asyncio.wait({holder, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if not held.is_set():
        waiting.cancel()
        holder.result()  # its error
        raise AssertionError("the holder ended without holding the lock")


async def _advisory_locks(engine: AsyncEngine) -> int:
    """Advisory locks held in this test's database (the other worker's turns take theirs
    in a database of its own: counting the server's made this test race with them)."""
    async with engine.connect() as connection:
        found = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database ="
                " (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
    return int(found or 0)


@pytest.mark.parametrize("ending", ["returns", "raises", "is cancelled while held"])
async def test_a_turn_lock_is_let_go_however_its_holder_ends(
    database_urls: dict[str, str], ending: str
) -> None:
    """One pooled connection: whatever the holder did, the next hold takes the lock at
    once on that same connection, and no advisory lock (nor transaction) is left."""
    engine = create_engine(database_urls["postgres"], pool_size=1, max_overflow=0)
    probe = create_engine(database_urls["postgres"], pool_size=1)
    locks = PostgresTurnLocks(engine, wait_seconds=0.5)
    conversation_id = uuid.uuid4()
    try:
        before = await _advisory_locks(probe)
        held = asyncio.Event()

        async def holder() -> None:
            async with locks.hold(conversation_id):
                assert await _advisory_locks(probe) == before + 1
                held.set()
                if ending == "raises":
                    raise RuntimeError("the turn failed")
                if ending == "is cancelled while held":
                    await asyncio.sleep(30)

        task = asyncio.create_task(holder())
        await _until_held(task, held)
        if ending == "is cancelled while held":
            task.cancel()
        if ending == "returns":
            await task
        else:
            with pytest.raises(RuntimeError if ending == "raises" else asyncio.CancelledError):
                await task
        async with locks.hold(conversation_id):
            pass
        assert await _advisory_locks(probe) == before
        # the pooled connection is idle: no transaction left open by a lock
        raw = await engine.raw_connection()
        try:
            assert raw.driver_connection is not None
            assert not raw.driver_connection.is_in_transaction()
        finally:
            raw.close()
    finally:
        await engine.dispose()
        await probe.dispose()


async def test_a_hold_cancelled_while_it_waits_leaves_its_connection_clean(
    database_urls: dict[str, str],
) -> None:
    engine = create_engine(database_urls["postgres"], pool_size=2, max_overflow=0)
    locks = PostgresTurnLocks(engine, wait_seconds=5)
    conversation_id = uuid.uuid4()
    try:
        async with _held_elsewhere(locks, conversation_id):
            waiter = asyncio.create_task(_hold_once(locks, conversation_id))
            await asyncio.sleep(0.2)  # waiting on the server for the lock
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        # both connections of the pool serve holds again, the cancelled one included
        await asyncio.wait_for(
            asyncio.gather(_hold_once(locks, uuid.uuid4()), _hold_once(locks, conversation_id)),
            timeout=5,
        )
    finally:
        await engine.dispose()


async def _hold_once(locks: PostgresTurnLocks, conversation_id: uuid.UUID) -> None:
    async with locks.hold(conversation_id):
        pass
