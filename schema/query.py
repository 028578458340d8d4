"""The Query root."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from resolvers import conversations as conversation_resolvers
from resolvers import nodes as node_resolvers
from resolvers import tasks as task_resolvers
from resolvers.context import Context
from schema.enums import ConversationStatus, TaskStatus
from schema.types import Connection, Conversation, Node, Task, User, node_from_row


@strawberry.type
class Query:
    @strawberry.field
    async def node(self, info: Info[Context, None], id: strawberry.ID) -> Node | None:
        return node_from_row(await node_resolvers.node(info.context, id))

    @strawberry.field
    async def me(self, info: Info[Context, None]) -> User:
        return User.from_row(await info.context.user())

    @strawberry.field(description="Most recently updated first.")
    async def conversations(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        status: ConversationStatus | None = ConversationStatus.ACTIVE,
        search: str | None = None,
    ) -> Connection[Conversation]:
        page = await conversation_resolvers.list_conversations(
            info.context,
            first=first,
            after=after,
            last=last,
            before=before,
            status=status or ConversationStatus.ACTIVE,
            search=search,
        )
        return Connection[Conversation].from_page(page, Conversation.from_row)

    @strawberry.field
    async def conversation(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> Conversation | None:
        row = await conversation_resolvers.conversation(info.context, id)
        return None if row is None else Conversation.from_row(row)

    @strawberry.field(description="Newest first.")
    async def tasks(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        status: TaskStatus | None = None,
    ) -> Connection[Task]:
        page = await task_resolvers.list_tasks(
            info.context,
            first=first,
            after=after,
            last=last,
            before=before,
            status=status,
        )
        return Connection[Task].from_page(page, Task.from_row)

    @strawberry.field
    async def task(self, info: Info[Context, None], id: strawberry.ID) -> Task | None:
        row = await task_resolvers.task(info.context, id)
        return None if row is None else Task.from_row(row)
