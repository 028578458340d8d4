"""Announcements that go out with a transaction (`Broker.publish_on_commit`): delivered
when it commits, to this instance and to another one, and never when it rolls back; a
savepoint's commit is not the transaction's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import create_engine, create_session_factory
from live.broker import Broker, Signal, build_broker, messages_changed, reply_changed

DELIVERY_SECONDS = 5.0
#: long enough for a NOTIFY to cross PostgreSQL to a listener, were one sent
SILENCE_SECONDS = 0.5


@pytest.fixture
async def two_brokers(
    database_urls: dict[str, str], backend: str
) -> AsyncIterator[tuple[AsyncSession, Broker, Broker]]:
    """A session, the broker that publishes with it and (PostgreSQL) a second instance's
    broker; on SQLite, one process: the same broker twice."""
    url = database_urls[backend]
    engine = create_engine(url, pool_size=2)
    publisher = build_broker(engine, url)
    other = build_broker(engine, url) if backend == "postgres" else publisher
    await publisher.start()
    if other is not publisher:
        await other.start()
    try:
        async with create_session_factory(engine)() as session:
            yield session, publisher, other
    finally:
        await publisher.stop()
        if other is not publisher:
            await other.stop()
        await engine.dispose()


async def delivered(signal: Signal, seconds: float) -> bool:
    try:
        await asyncio.wait_for(signal.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def test_an_announcement_is_delivered_when_its_transaction_commits(
    two_brokers: tuple[AsyncSession, Broker, Broker],
) -> None:
    session, publisher, other = two_brokers
    conversation_id, reply_id = uuid.uuid4(), uuid.uuid4()
    async with (
        publisher.listen(conversation_id) as here,
        other.listen(conversation_id) as there,
        other.listen_reply(reply_id) as reply_there,
    ):
        async with session.begin():
            await session.connection()
            await publisher.publish_on_commit(
                session, [messages_changed(conversation_id), reply_changed(reply_id)]
            )
            assert not await delivered(here, SILENCE_SECONDS)  # not before the commit
        assert await delivered(here, DELIVERY_SECONDS)
        assert await delivered(there, DELIVERY_SECONDS)
        assert await delivered(reply_there, DELIVERY_SECONDS)


async def test_an_announcement_of_a_rolled_back_transaction_is_never_delivered(
    two_brokers: tuple[AsyncSession, Broker, Broker],
) -> None:
    session, publisher, other = two_brokers
    dropped, kept = uuid.uuid4(), uuid.uuid4()
    async with publisher.listen(dropped) as here, other.listen(dropped) as there:
        await session.begin()
        await session.connection()
        await publisher.publish_on_commit(session, [messages_changed(dropped)])
        await session.rollback()
        # the session's next transaction commits: the dropped announcement stays dropped
        async with session.begin():
            await session.connection()
            await publisher.publish_on_commit(session, [messages_changed(kept)])
        assert not await delivered(here, SILENCE_SECONDS)
        assert not await delivered(there, SILENCE_SECONDS)


async def test_a_savepoint_commit_does_not_deliver_an_announcement_early(
    two_brokers: tuple[AsyncSession, Broker, Broker],
) -> None:
    session, publisher, _ = two_brokers
    conversation_id = uuid.uuid4()
    async with publisher.listen(conversation_id) as here:
        await session.begin()
        await session.connection()
        await publisher.publish_on_commit(session, [messages_changed(conversation_id)])
        async with session.begin_nested():
            pass
        assert not await delivered(here, SILENCE_SECONDS)
        await session.rollback()
        assert not await delivered(here, SILENCE_SECONDS)
