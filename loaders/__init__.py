"""Per-request DataLoaders: one class per relation, one SQL statement per batch,
results in key order. Reached through `Context.loaders`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

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


class ConversationById(DataLoader[uuid.UUID, Conversation | None]):
    def __init__(self, context: Context) -> None:
        async def load(keys: Sequence[uuid.UUID]) -> list[Conversation | None]:
            user_id = await context.user_id()
            async with context.reading() as session:
                rows = await conversation_queries.get_conversations(session, user_id, keys)
            found = {row.id: row for row in rows}
            return [found.get(key) for key in keys]

        super().__init__(load_fn=load)


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


class MessageById(DataLoader[uuid.UUID, Message | None]):
    def __init__(self, context: Context) -> None:
        async def load(keys: Sequence[uuid.UUID]) -> list[Message | None]:
            user_id = await context.user_id()
            async with context.reading() as session:
                rows = await message_queries.get_messages(session, user_id, keys)
            found = {row.id: row for row in rows}
            return [found.get(key) for key in keys]

        super().__init__(load_fn=load)


class TaskById(DataLoader[uuid.UUID, Task | None]):
    def __init__(self, context: Context) -> None:
        async def load(keys: Sequence[uuid.UUID]) -> list[Task | None]:
            user_id = await context.user_id()
            async with context.reading() as session:
                rows = await task_queries.get_tasks(session, user_id, keys)
            found = {row.id: row for row in rows}
            return [found.get(key) for key in keys]

        super().__init__(load_fn=load)
