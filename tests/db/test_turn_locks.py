"""Turn locks on PostgreSQL: a wait that runs out is AGENT_TIMEOUT, told by its SQLSTATE;
a turn on the lock's own connection takes it with its first BEGIN and lets it go with
its last COMMIT, or when its hold ends, however the turn ends."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core.errors import AgentTimeout
from db.engine import create_engine, create_session_factory
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


# --- a turn on the lock's connection (`hold_in`) ----------------------------------------


async def _lock_holders(probe: AsyncEngine) -> list[tuple[int, bool]]:
    """(backend pid, granted) of each advisory lock asked for in this test's database."""
    async with probe.connect() as connection:
        found = await connection.execute(
            text(
                "SELECT pid, granted FROM pg_locks WHERE locktype = 'advisory' AND database ="
                " (SELECT oid FROM pg_database WHERE datname = current_database())"
                " ORDER BY pid"
            )
        )
        return [(int(pid), bool(granted)) for pid, granted in found]


async def _backend(session: AsyncSession) -> int:
    return int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)


@asynccontextmanager
async def _turn_engines(
    url: str, wait_seconds: float = 0.5
) -> AsyncIterator[tuple[PostgresTurnLocks, AsyncEngine, AsyncEngine, AsyncEngine]]:
    """The locks (a pool of two, as small as lets `try_hold` ask beside a turn), the
    sessions' engine and a probe."""
    lock_engine = create_engine(url, pool_size=2, max_overflow=0)
    engine = create_engine(url, pool_size=2)
    probe = create_engine(url, pool_size=1)
    try:
        yield PostgresTurnLocks(lock_engine, wait_seconds), lock_engine, engine, probe
    finally:
        for each in (lock_engine, engine, probe):
            await each.dispose()


async def test_a_turn_holds_its_lock_on_its_own_connection_from_first_begin_to_last_commit(
    database_urls: dict[str, str],
) -> None:
    async with _turn_engines(database_urls["postgres"]) as (locks, _, engine, probe):
        conversation_id = uuid.uuid4()
        async with create_session_factory(engine)() as session:
            async with locks.hold_in(session, conversation_id) as hold:
                assert await _lock_holders(probe) == []  # asked for with the first BEGIN
                async with session.begin():
                    turn = await _backend(session)
                    assert await _lock_holders(probe) == [(turn, True)]
                # between the units: still held, and by this turn alone
                assert await _lock_holders(probe) == [(turn, True)]
                async with locks.try_hold(conversation_id) as taken_elsewhere:
                    assert not taken_elsewhere
                async with session.begin():
                    assert await _backend(session) == turn  # one connection: no checkout
                    hold.let_go_at_commit()
                    assert await _lock_holders(probe) == [(turn, True)]  # not before COMMIT
                # gone with the COMMIT, before the hold ends
                assert await _lock_holders(probe) == []
            # the session is back on its own engine
            async with session.begin():
                assert await _backend(session) != turn
        async with locks.try_hold(conversation_id) as free:
            assert free


async def test_a_turns_lock_wait_that_runs_out_is_agent_timeout_and_leaves_no_trace(
    database_urls: dict[str, str],
) -> None:
    async with _turn_engines(database_urls["postgres"], wait_seconds=0.2) as (
        locks,
        lock_engine,
        engine,
        probe,
    ):
        conversation_id = uuid.uuid4()
        async with create_session_factory(engine)() as session:
            async with _held_elsewhere(locks, conversation_id):
                with pytest.raises(AgentTimeout):
                    async with locks.hold_in(session, conversation_id), session.begin():
                        await session.execute(text("SELECT 1"))
                assert len(await _lock_holders(probe)) == 1  # the other holder's alone
            # the session works on its engine again, and the locks' pool serves turns
            async with session.begin():
                await session.execute(text("SELECT 1"))
            async with locks.hold_in(session, conversation_id), session.begin():
                await session.execute(text("SELECT 1"))
        assert await _lock_holders(probe) == []
        await _pool_is_idle(lock_engine)


@pytest.mark.parametrize(
    "ending", ["raises after a unit", "rolls back its last unit", "is cancelled while held"]
)
async def test_a_turns_lock_is_let_go_when_its_hold_ends_however_the_turn_ends(
    database_urls: dict[str, str], ending: str
) -> None:
    """A failed last unit keeps the lock (the failed run is marked under it) until the
    hold ends; then it is gone, and the connection serves the next turn."""
    async with _turn_engines(database_urls["postgres"]) as (locks, lock_engine, engine, probe):
        conversation_id = uuid.uuid4()
        held = asyncio.Event()

        async def turn(session: AsyncSession) -> None:
            async with locks.hold_in(session, conversation_id) as hold:
                async with session.begin():
                    await session.execute(text("SELECT 1"))
                if ending == "rolls back its last unit":
                    with contextlib.suppress(RuntimeError):
                        async with session.begin():
                            await session.execute(text("SELECT 1"))
                            hold.let_go_at_commit()
                            raise RuntimeError("the model failed")
                    assert not session.in_transaction()
                    assert len(await _lock_holders(probe)) == 1
                    return
                held.set()
                if ending == "raises after a unit":
                    raise RuntimeError("the turn failed")
                await asyncio.sleep(30)

        async with create_session_factory(engine)() as session:
            task = asyncio.create_task(turn(session))
            if ending == "is cancelled while held":
                await _until_held(task, held)
                task.cancel()
            if ending == "rolls back its last unit":
                await task
            else:
                with pytest.raises(
                    RuntimeError if ending == "raises after a unit" else asyncio.CancelledError
                ):
                    await task
        assert await _lock_holders(probe) == []
        async with (
            create_session_factory(engine)() as session,
            locks.hold_in(session, conversation_id),
            session.begin(),
        ):
            await session.execute(text("SELECT 1"))
        assert await _lock_holders(probe) == []
        await _pool_is_idle(lock_engine)


async def test_a_turn_cancelled_while_it_waits_for_its_lock_leaves_no_trace(
    database_urls: dict[str, str],
) -> None:
    async with _turn_engines(database_urls["postgres"], wait_seconds=5) as (
        locks,
        lock_engine,
        engine,
        probe,
    ):
        conversation_id = uuid.uuid4()

        async def turn() -> None:
            async with (
                create_session_factory(engine)() as session,
                locks.hold_in(session, conversation_id),
                session.begin(),
            ):
                await session.execute(text("SELECT 1"))

        async with _held_elsewhere(locks, conversation_id):
            waiter = asyncio.create_task(turn())
            for _ in range(100):  # until it waits on the server
                if any(not granted for _, granted in await _lock_holders(probe)):
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the turn never waited for the lock")
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert [granted for _, granted in await _lock_holders(probe)] == [True]
        await asyncio.wait_for(asyncio.gather(turn(), turn()), timeout=5)
        assert await _lock_holders(probe) == []
        await _pool_is_idle(lock_engine)


async def test_behind_a_transaction_pooler_a_turns_lock_is_held_apart(
    database_urls: dict[str, str],
) -> None:
    """A pooler keeps no session's lock between its transactions: the lock is taken at
    once, on a connection of its own, and the turn's statements run elsewhere."""
    url = database_urls["postgres"]
    async with _turn_engines(url) as (locks, _, _, probe):
        pooled = create_engine(url, pool_size=1, pooled=True)
        try:
            async with (
                create_session_factory(pooled)() as session,
                locks.hold_in(session, uuid.uuid4()),
            ):
                [(holder, granted)] = await _lock_holders(probe)
                assert granted
                async with session.begin():
                    assert await _backend(session) != holder
            assert await _lock_holders(probe) == []
        finally:
            await pooled.dispose()


async def _pool_is_idle(engine: AsyncEngine) -> None:
    """Every connection the pool keeps is open and in no transaction."""
    raw = await engine.raw_connection()
    try:
        assert raw.driver_connection is not None
        assert not raw.driver_connection.is_in_transaction()
    finally:
        raw.close()
