"""A transaction's NOTIFYs go with its COMMIT (db/notify_at_commit.py): listeners get
them once it commits, never when it rolls back, and a payload that could not be written
into the query safely is refused (the broker then sends its own statement)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from sqlalchemy import text

from db.engine import create_engine, create_session_factory
from tests.pgtools import asyncpg_dsn


async def _listener(url: str, channel: str) -> tuple[asyncpg.Connection, asyncio.Queue[str]]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    received: asyncio.Queue[str] = asyncio.Queue()
    await connection.add_listener(channel, lambda *args: received.put_nowait(args[3]))
    return connection, received


@pytest.mark.parametrize("ending", ["commit", "rollback"])
async def test_notifications_queued_in_a_transaction_go_with_its_commit(
    database_urls: dict[str, str], ending: str
) -> None:
    url = database_urls["postgres"]
    channel = f"taskchat_test_{uuid.uuid4().hex[:12]}"
    listener, received = await _listener(url, channel)
    engine = create_engine(url, pool_size=1)
    try:
        async with create_session_factory(engine)() as session:
            await session.begin()
            raw = await (await session.connection()).get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            # not before the transaction has begun on the server: its COMMIT might never
            # be sent (SQLAlchemy begins at the first statement)
            assert not driver.notify_at_commit([(channel, "too-soon")])
            await session.execute(text("SELECT 1"))
            payload = f"{uuid.uuid4()}:1764800000.123456"
            assert driver.notify_at_commit([(channel, payload), (channel, "b")])
            await asyncio.sleep(0.1)
            assert received.empty()  # nothing before the transaction ends
            if ending == "commit":
                await session.commit()
                got = [await asyncio.wait_for(received.get(), 5) for _ in range(2)]
                assert got == [payload, "b"]
            else:
                await session.rollback()
                await asyncio.sleep(0.2)
                assert received.empty()
            # the next transaction on the same connection carries nothing left over
            await session.begin()
            await session.commit()
            await asyncio.sleep(0.1)
            assert received.empty()
    finally:
        await engine.dispose()
        await listener.close()


@pytest.mark.parametrize("payload", ["it's", "back\\slash", "", "x" * 201, "semi;colon"])
async def test_what_cannot_be_written_safely_is_refused(
    database_urls: dict[str, str], payload: str
) -> None:
    engine = create_engine(database_urls["postgres"], pool_size=1)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            await session.execute(text("SELECT 1"))
            raw = await (await session.connection()).get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            assert not driver.notify_at_commit([("taskchat_test", payload)])
            assert not driver.notify_at_commit([(payload, "ok")])
            assert driver.notify_at_commit([("taskchat_test", "ok")])
    finally:
        await engine.dispose()


async def test_sql_carried_with_a_begin_runs_in_that_transaction(
    database_urls: dict[str, str],
) -> None:
    """`carry_with_begin`: the SQL runs in the transaction the next BEGIN starts (a
    setting made LOCAL there holds in it), once; an error in it fails that first
    statement and is marked."""
    engine = create_engine(database_urls["postgres"], pool_size=1)
    try:
        async with engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            carried = raw.carry_with_begin("SET LOCAL application_name = 'carried'")
            assert carried is not None
            assert not carried.sent
            async with connection.begin():
                name = await connection.scalar(text("SELECT current_setting('application_name')"))
            assert name == "carried"
            assert carried.sent
            assert not carried.failed
            async with connection.begin():
                name = await connection.scalar(text("SELECT current_setting('application_name')"))
            assert name != "carried"  # once, and LOCAL: gone with its transaction
            failing = raw.carry_with_begin("SELECT 1 / 0")
            assert failing is not None
            with pytest.raises(Exception, match="division by zero"):
                async with connection.begin():
                    await connection.scalar(text("SELECT 1"))
            assert failing.failed
            assert not failing.sent
            # asyncpg's transaction that failed to begin is in doubt: not pooled again
            await connection.invalidate()
    finally:
        await engine.dispose()


@pytest.mark.parametrize("ending", ["commit", "rollback"])
async def test_sql_carried_after_a_commit_runs_only_once_it_committed(
    database_urls: dict[str, str], ending: str
) -> None:
    url = database_urls["postgres"]
    channel = f"taskchat_test_{uuid.uuid4().hex[:12]}"
    listener, received = await _listener(url, channel)
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            await connection.begin()
            await connection.execute(text("SELECT 1"))
            # outside the transaction: a NOTIFY there is delivered at once
            carried = raw.carry_after_commit(f"NOTIFY {channel}, 'after'")
            await asyncio.sleep(0.1)
            assert received.empty()
            if ending == "commit":
                await connection.commit()
                assert await asyncio.wait_for(received.get(), 5) == "after"
                assert carried.sent
            else:
                await connection.rollback()
                assert not carried.sent
            # dropped either way: the next COMMIT carries nothing
            async with connection.begin():
                await connection.execute(text("SELECT 1"))
            await asyncio.sleep(0.2)
            assert received.empty()
    finally:
        await engine.dispose()
        await listener.close()
