"""Per-request DataLoaders: one class per relation, one SQL statement per batch,
results in key order. Built by the request's `Context`, which they read through."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from db import agent_runs as run_queries
from db import conversations as conversation_queries
from db import feedback as feedback_queries
from db import messages as message_queries
from db import task_effects as effect_queries
from db import tasks as task_queries
from db.models import AgentRun, Conversation, Message, ReplyFeedback, Task

T = TypeVar("T")


class Reads(Protocol):
    """What a loader needs of its request: who asks, and the request's reads."""

    async def user_id(self) -> uuid.UUID: ...
    async def read(self, query: Callable[[AsyncSession], Awaitable[T]]) -> T: ...


class Loaders:
    def __init__(self, reads: Reads) -> None:
        self.conversation_by_id = ConversationById(reads)
        self.message_count_by_conversation = MessageCountByConversation(reads)
        self.last_message_by_conversation = LastMessageByConversation(reads)
        self.message_by_id = MessageById(reads)
        self.active_reply_by_conversation = ActiveReplyByConversation(reads)
        self.task_by_id = TaskById(reads)
        self.run_by_reply = RunByReply(reads)
        self.feedback_by_message = FeedbackByMessage(reads)
        self.origin_by_task = OriginByTask(reads)
        self.affected_tasks_by_message = AffectedTasksByMessage(reads)


RowT = TypeVar("RowT", Conversation, Message, Task)
FetchRows = Callable[[AsyncSession, uuid.UUID, Sequence[uuid.UUID]], Awaitable[list[RowT]]]


class _RowsById(DataLoader[uuid.UUID, RowT | None]):
    """Rows of the current user by id, one statement per batch; `None` where absent."""

    def __init__(self, reads: Reads, fetch: FetchRows[RowT]) -> None:
        async def load(keys: Sequence[uuid.UUID]) -> list[RowT | None]:
            user_id = await reads.user_id()
            rows = await reads.read(lambda session: fetch(session, user_id, keys))
            found = {row.id: row for row in rows}
            return [found.get(key) for key in keys]

        super().__init__(load_fn=load)


class ConversationById(_RowsById[Conversation]):
    def __init__(self, reads: Reads) -> None:
        super().__init__(reads, conversation_queries.get_conversations)


class MessageById(_RowsById[Message]):
    def __init__(self, reads: Reads) -> None:
        super().__init__(reads, message_queries.get_messages)


class TaskById(_RowsById[Task]):
    def __init__(self, reads: Reads) -> None:
        super().__init__(reads, task_queries.get_tasks)


class MessageCountByConversation(DataLoader[uuid.UUID, int]):
    def __init__(self, reads: Reads) -> None:
        async def load(keys: Sequence[uuid.UUID]) -> list[int]:
            user_id = await reads.user_id()
            counts = await reads.read(
                lambda session: message_queries.count_messages(session, user_id, keys)
            )
            return [counts.get(key, 0) for key in keys]

        super().__init__(load_fn=load)


class LastMessageByConversation(DataLoader[uuid.UUID, Message | None]):
    def __init__(self, reads: Reads) -> None:
        async def load(keys: Sequence[uuid.UUID]) -> list[Message | None]:
            user_id = await reads.user_id()
            newest = await reads.read(
                lambda session: message_queries.last_messages(session, user_id, keys)
            )
            return [newest.get(key) for key in keys]

        super().__init__(load_fn=load)


class RunByReply(DataLoader[uuid.UUID, AgentRun | None]):
    """The run that produced each reply (its usage)."""

    def __init__(self, reads: Reads) -> None:
        async def load(keys: Sequence[uuid.UUID]) -> list[AgentRun | None]:
            user_id = await reads.user_id()
            runs = await reads.read(
                lambda session: run_queries.runs_of_replies(session, user_id, keys)
            )
            found = {run.reply_id: run for run in runs}
            return [found.get(key) for key in keys]

        super().__init__(load_fn=load)


class FeedbackByMessage(DataLoader[uuid.UUID, ReplyFeedback | None]):
    """The current user's rating of each reply."""

    def __init__(self, reads: Reads) -> None:
        async def load(keys: Sequence[uuid.UUID]) -> list[ReplyFeedback | None]:
            user_id = await reads.user_id()
            rows = await reads.read(
                lambda session: feedback_queries.feedback_of(session, user_id, keys)
            )
            found = {row.message_id: row for row in rows}
            return [found.get(key) for key in keys]

        super().__init__(load_fn=load)


class OriginByTask(DataLoader[uuid.UUID, tuple[Message, str] | None]):
    """The live reply (and its tool call id) that created each task."""

    def __init__(self, reads: Reads) -> None:
        async def load(keys: Sequence[uuid.UUID]) -> list[tuple[Message, str] | None]:
            user_id = await reads.user_id()
            found = await reads.read(lambda session: effect_queries.origins(session, user_id, keys))
            return [found.get(key) for key in keys]

        super().__init__(load_fn=load)


class AffectedTasksByMessage(DataLoader[uuid.UUID, list[Task]]):
    """The tasks each reply's tool calls created or changed."""

    def __init__(self, reads: Reads) -> None:
        async def load(keys: Sequence[uuid.UUID]) -> list[list[Task]]:
            user_id = await reads.user_id()
            found = await reads.read(
                lambda session: effect_queries.affected_tasks(session, user_id, keys)
            )
            return [found.get(key, []) for key in keys]

        super().__init__(load_fn=load)


class ActiveReplyByConversation(DataLoader[uuid.UUID, Message | None]):
    def __init__(self, reads: Reads) -> None:
        async def load(keys: Sequence[uuid.UUID]) -> list[Message | None]:
            user_id = await reads.user_id()
            active = await reads.read(
                lambda session: message_queries.active_replies(session, user_id, keys)
            )
            return [active.get(key) for key in keys]

        super().__init__(load_fn=load)
