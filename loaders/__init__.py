"""Per-request DataLoaders: one class per relation, one SQL statement per batch,
results in key order. Reached through `Context.loaders`."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from db import conversations as conversation_queries
from db import messages as message_queries
from db import tasks as task_queries
from db.models import Conversation, Message, Task

if TYPE_CHECKING:
    from resolvers.context import Context


class Loaders:
    def __init__(self, context: Context) -> None:
        self.conversation_by_id = ConversationById(context)
        self.message_count_by_conversation = MessageCountByConversation(context)
        self.last_message_by_conversation = LastMessageByConversation(context)
        self.message_by_id = MessageById(context)
        self.task_by_id = TaskById(context)


RowT = TypeVar("RowT", Conversation, Message, Task)
FetchRows = Callable[[AsyncSession, uuid.UUID, Sequence[uuid.UUID]], Awaitable[list[RowT]]]


class _RowsById(DataLoader[uuid.UUID, RowT | None]):
    """Rows of the current user by id, one statement per batch; `None` where absent."""

    def __init__(self, context: Context, fetch: FetchRows[RowT]) -> None:
        async def load(keys: Sequence[uuid.UUID]) -> list[RowT | None]:
            user_id = await context.user_id()
            async with context.reading() as session:
                rows = await fetch(session, user_id, keys)
            found = {row.id: row for row in rows}
            return [found.get(key) for key in keys]

        super().__init__(load_fn=load)


class ConversationById(_RowsById[Conversation]):
    def __init__(self, context: Context) -> None:
        super().__init__(context, conversation_queries.get_conversations)


class MessageById(_RowsById[Message]):
    def __init__(self, context: Context) -> None:
        super().__init__(context, message_queries.get_messages)


class TaskById(_RowsById[Task]):
    def __init__(self, context: Context) -> None:
        super().__init__(context, task_queries.get_tasks)


class MessageCountByConversation(DataLoader[uuid.UUID, int]):
    def __init__(self, context: Context) -> None:
        async def load(keys: Sequence[uuid.UUID]) -> list[int]:
            user_id = await context.user_id()
            async with context.reading() as session:
                counts = await message_queries.count_messages(session, user_id, keys)
            return [counts.get(key, 0) for key in keys]

        super().__init__(load_fn=load)


class LastMessageByConversation(DataLoader[uuid.UUID, Message | None]):
    def __init__(self, context: Context) -> None:
        async def load(keys: Sequence[uuid.UUID]) -> list[Message | None]:
            user_id = await context.user_id()
            async with context.reading() as session:
                newest = await message_queries.last_messages(session, user_id, keys)
            return [newest.get(key) for key in keys]

        super().__init__(load_fn=load)
