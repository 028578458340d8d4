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
from resolvers.context import Context
from resolvers.pagination import PageResult
from schema.enums import ConversationStatus, MessageRole, MessageStatus, TaskStatus

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


@strawberry.type
class User(Node):
    created_at: datetime

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
