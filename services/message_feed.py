"""The messages of a conversation as they are stored, whichever instance stores them."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import NotFound
from db import conversations as conversation_queries
from db import messages as message_queries
from db.models import Message
from db.transactions import read_transaction
from live.broker import Broker

CATCH_UP_BATCH = 100
T = TypeVar("T")


async def _read(
    session_factory: async_sessionmaker[AsyncSession],
    query: Callable[[AsyncSession], Awaitable[T]],
) -> T:
    """One read on a session of its own, run to completion even when the feed is closed
    meanwhile: a statement cut off mid-flight would break its pooled connection."""

    async def run() -> T:
        async with session_factory() as session, read_transaction(session):
            return await query(session)

    return await asyncio.shield(asyncio.ensure_future(run()))


async def follow_messages(
    session_factory: async_sessionmaker[AsyncSession],
    broker: Broker,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    after_seq: int | None = None,
) -> AsyncIterator[Message]:
    """Every message stored in the conversation from now on, in order; with `after_seq`,
    those stored after that position come first, so a client that reconnects loses
    nothing. Ends when the conversation is deleted; `NOT_FOUND` if it is not the user's.

    Each read takes a session of its own and ends its transaction, so an idle feed holds
    no connection and every read sees the newest snapshot."""
    # listen first, then read where we start: nothing falls between the two
    async with broker.listen(conversation_id) as signal:
        conversation = await _read(
            session_factory,
            lambda session: conversation_queries.get_conversation(
                session, user_id, conversation_id
            ),
        )
        if conversation is None:
            raise NotFound("conversation")
        seen = conversation.last_seq if after_seq is None else after_seq
        if after_seq is None:
            # a reply streaming now has its position already, and is listed once it ends
            active = await _read(
                session_factory,
                lambda session: message_queries.active_replies(session, user_id, [conversation_id]),
            )
            if conversation_id in active:
                seen = min(seen, active[conversation_id].seq - 1)
        if after_seq is not None:
            signal.set()  # catch up before waiting
        while True:
            await signal.wait()
            while True:
                fresh, is_live = await _read(
                    session_factory,
                    functools.partial(
                        _newer_messages, user_id=user_id, conversation_id=conversation_id, seq=seen
                    ),
                )
                if not is_live:
                    return  # deleted: the feed ends
                for message in fresh:
                    seen = message.seq
                    yield message
                if len(fresh) < CATCH_UP_BATCH:
                    break


async def _newer_messages(
    session: AsyncSession, *, user_id: uuid.UUID, conversation_id: uuid.UUID, seq: int
) -> tuple[list[Message], bool]:
    """The next batch after `seq`, and whether the conversation is still there."""
    fresh = await message_queries.messages_after(
        session, user_id, conversation_id, seq, CATCH_UP_BATCH
    )
    if fresh:
        return fresh, True
    return fresh, await conversation_queries.get_conversation(
        session, user_id, conversation_id
    ) is not None
