"""The viewer's conversations as they change, on any instance (`conversationEvents`).

Every change to a conversation (created, renamed, archived, restored, deleted, a message
stored) gives it the user's next change position (`db.conversations.record_change`,
under the user's row lock, so positions follow commit order). The feed reads what
changed after the last position it delivered and waits for the user's next signal: a
missed notification is healed by the next one, and a client resumes from the position
its last event carried.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import conversations as conversation_queries
from db.models import Conversation
from live.broker import Broker
from services.replies import _read

BATCH = 100


async def follow_conversations(
    session_factory: async_sessionmaker[AsyncSession],
    broker: Broker,
    user_id: uuid.UUID,
    after: int | None = None,
) -> AsyncIterator[Conversation]:
    """The user's conversations as they change from now on (after position `after`
    first, when given), each as it is after the change; a deleted one has `deleted_at`.
    Its `change_seq` is the position to resume after."""
    async with broker.listen(user_id) as signal:

        async def now(session: AsyncSession) -> int:
            return await conversation_queries.current_change_seq(session, user_id)

        position = await _read(session_factory, now) if after is None else after
        if after is not None:
            signal.set()  # catch up before waiting
        while True:
            await signal.wait()
            while True:
                fresh = await _read(
                    session_factory,
                    functools.partial(_changed, user_id=user_id, position=position),
                )
                for conversation in fresh:
                    position = conversation.change_seq
                    yield conversation
                if len(fresh) < BATCH:
                    break


async def _changed(
    session: AsyncSession, *, user_id: uuid.UUID, position: int
) -> list[Conversation]:
    return await conversation_queries.changes_after(session, user_id, position, BATCH)
