"""The messages of a conversation as they are stored, whichever instance stores them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import NotFound
from db import conversations as conversation_queries
from db import messages as message_queries
from db.models import Message
from live.broker import Broker

CATCH_UP_BATCH = 100


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
        async with session_factory() as session, session.begin():
            conversation = await conversation_queries.get_conversation(
                session, user_id, conversation_id
            )
        if conversation is None:
            raise NotFound("conversation")
        seen = conversation.last_seq if after_seq is None else after_seq
        if after_seq is not None:
            signal.set()  # catch up before waiting
        while True:
            await signal.wait()
            while True:
                async with session_factory() as session, session.begin():
                    fresh = await message_queries.messages_after(
                        session, user_id, conversation_id, seen, CATCH_UP_BATCH
                    )
                    if not fresh and not await conversation_queries.get_conversation(
                        session, user_id, conversation_id
                    ):
                        return  # deleted: the feed ends
                for message in fresh:
                    seen = message.seq
                    yield message
                if len(fresh) < CATCH_UP_BATCH:
                    break
