"""Object types. Each is a thin view over a database row, built by `from_row`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, Self, TypeVar, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from core.ids import to_global_id
from db import models
from resolvers import messages as message_resolvers
from resolvers import records as record_resolvers
from resolvers.context import Context
from resolvers.pagination import PageResult
from schema.enums import ConversationStatus, MessageRole, MessageStatus, Rating, TaskStatus

T = TypeVar("T")


@strawberry.interface(description="An object with a global id, opaque to clients.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    _page: strawberry.Private[PageResult[Any]]

    @strawberry.field(description="All items of the list, across pages.")
    async def total_count(self) -> int:
        return await self._page.count()

    @classmethod
    def from_page(cls, page: PageResult[Any], to_node: Any) -> Self:
        return cls(
            edges=[
                Edge(cursor=cursor, node=to_node(row))
                for row, cursor in zip(page.rows, page.cursors, strict=True)
            ],
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=page.has_previous_page,
                start_cursor=page.cursors[0] if page.cursors else None,
                end_cursor=page.cursors[-1] if page.cursors else None,
            ),
            _page=page,
        )


@strawberry.type(description="Tokens summed over the viewer's turns.")
class UsageTotals:
    turns: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@strawberry.type
class User(Node):
    created_at: datetime

    @strawberry.field(
        description="What the viewer's turns spent (since `since` when given): every turn "
        "that reached the model, failed and cancelled ones too."
    )
    async def usage(self, info: Info[Context, None], since: datetime | None = None) -> UsageTotals:
        totals = await record_resolvers.usage_totals(info.context, since)
        return UsageTotals(
            turns=totals.turns,
            prompt_tokens=totals.prompt_tokens,
            completion_tokens=totals.completion_tokens,
            total_tokens=totals.prompt_tokens + totals.completion_tokens,
        )

    @classmethod
    def from_row(cls, row: models.User) -> User:
        return cls(id=strawberry.ID(to_global_id("User", row.id)), created_at=row.created_at)


@strawberry.type
class ToolCall:
    id: str
    name: str
    arguments: JSON
    result: JSON | None
    ok: bool

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ToolCall:
        return cls(
            id=str(record.get("id", "")),
            name=str(record.get("name", "")),
            arguments=cast(JSON, record.get("arguments") or {}),
            result=cast(JSON | None, record.get("result")),
            ok=bool(record.get("ok", False)),
        )


@strawberry.type
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    model: str | None
    latency_ms: int | None
    estimated: bool = strawberry.field(
        description="true when the provider sent no counts (e.g. a stop mid-stream) and "
        "they were estimated"
    )

    @classmethod
    def from_run(cls, run: models.AgentRun) -> Usage:
        prompt, completion = run.prompt_tokens or 0, run.completion_tokens or 0
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            model=run.model,
            latency_ms=run.latency_ms,
            estimated=run.usage_estimated,
        )


@strawberry.type
class Feedback:
    rating: Rating
    comment: str | None
    updated_at: datetime

    @classmethod
    def from_row(cls, row: models.ReplyFeedback) -> Feedback:
        return cls(rating=row.rating, comment=row.comment, updated_at=row.updated_at)


@strawberry.type(description="The chat reply whose tool call created a task.")
class TaskOrigin:
    message: Message
    tool_call: ToolCall


@strawberry.type
class Message(Node):
    role: MessageRole
    content: str
    client_message_id: str | None
    created_at: datetime
    status: MessageStatus = strawberry.field(
        description="USER messages are COMPLETED; a reply is STREAMING while it is generated."
    )
    row: strawberry.Private[models.Message]

    @strawberry.field(
        description="The tools the assistant called to produce this message, in order; "
        "empty for USER."
    )
    def tool_calls(self) -> list[ToolCall]:
        return [ToolCall.from_record(record) for record in self.row.tool_calls or []]

    @strawberry.field
    async def conversation(self, info: Info[Context, None]) -> Conversation:
        row = await message_resolvers.conversation_of(info.context, self.row)
        return Conversation.from_row(row)

    @strawberry.field(description="The question a reply answers; null for USER messages.")
    async def reply_to(self, info: Info[Context, None]) -> Message | None:
        row = await record_resolvers.reply_to(info.context, self.row)
        return None if row is None else Message.from_row(row)

    @strawberry.field(
        description="ASSISTANT only: tokens spent on this reply (summed over its steps)."
    )
    async def usage(self, info: Info[Context, None]) -> Usage | None:
        run = await record_resolvers.run_of(info.context, self.row)
        return None if run is None else Usage.from_run(run)

    @strawberry.field(description="The viewer's rating of this reply.")
    async def feedback(self, info: Info[Context, None]) -> Feedback | None:
        row = await record_resolvers.feedback_of(info.context, self.row)
        return None if row is None else Feedback.from_row(row)

    @strawberry.field(
        description="Tasks that this reply's tool calls created or changed (deleted tasks "
        "are not listed)."
    )
    async def affected_tasks(self, info: Info[Context, None]) -> list[Task]:
        rows = await record_resolvers.affected_tasks(info.context, self.row)
        return [Task.from_row(row) for row in rows]

    @classmethod
    def from_row(cls, row: models.Message) -> Message:
        return cls(
            id=strawberry.ID(to_global_id("Message", row.id)),
            role=row.role,
            content=row.content,
            client_message_id=row.client_message_id,
            created_at=row.created_at,
            status=row.status,
            row=row,
        )


@strawberry.type
class Conversation(Node):
    title: str
    status: ConversationStatus
    created_at: datetime
    updated_at: datetime
    row_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def message_count(self, info: Info[Context, None]) -> int:
        return await message_resolvers.message_count(info.context, self.row_id)

    @strawberry.field
    async def last_message(self, info: Info[Context, None]) -> Message | None:
        row = await message_resolvers.last_message(info.context, self.row_id)
        return None if row is None else Message.from_row(row)

    @strawberry.field(
        description="Oldest first. `last: N` gives the newest N; `before` pages back in history."
    )
    async def messages(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Message]:
        page = await message_resolvers.list_messages(
            info.context, self.row_id, first=first, after=after, last=last, before=before
        )
        return Connection[Message].from_page(page, Message.from_row)

    @strawberry.field(
        description="The reply being generated now (status STREAMING), if any. It is not in "
        "`messages`, `lastMessage` or `messageCount` until it ends (COMPLETED or STOPPED)."
    )
    async def active_reply(self, info: Info[Context, None]) -> Message | None:
        row = await message_resolvers.active_reply(info.context, self.row_id)
        return None if row is None else Message.from_row(row)

    @classmethod
    def from_row(cls, row: models.Conversation) -> Conversation:
        return cls(
            id=strawberry.ID(to_global_id("Conversation", row.id)),
            title=row.title,
            status=row.status,
            created_at=row.created_at,
            updated_at=row.updated_at,
            row_id=row.id,
        )


@strawberry.type
class Task(Node):
    title: str
    description: str | None
    status: TaskStatus
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    row: strawberry.Private[models.Task]

    @strawberry.field(description="Null for tasks made by mutations.")
    async def origin(self, info: Info[Context, None]) -> TaskOrigin | None:
        found = await record_resolvers.origin_of(info.context, self.row)
        if found is None:
            return None
        message, tool_call_id = found
        record = next(
            (call for call in message.tool_calls or [] if call.get("id") == tool_call_id),
            {"id": tool_call_id},
        )
        return TaskOrigin(message=Message.from_row(message), tool_call=ToolCall.from_record(record))

    @classmethod
    def from_row(cls, row: models.Task) -> Task:
        return cls(
            id=strawberry.ID(to_global_id("Task", row.id)),
            title=row.title,
            description=row.description,
            status=row.status,
            created_at=row.created_at,
            updated_at=row.updated_at,
            completed_at=row.completed_at,
            row=row,
        )


def node_from_row(row: object) -> Node | None:
    if isinstance(row, models.User):
        return User.from_row(row)
    if isinstance(row, models.Conversation):
        return Conversation.from_row(row)
    if isinstance(row, models.Message):
        return Message.from_row(row)
    if isinstance(row, models.Task):
        return Task.from_row(row)
    return None
