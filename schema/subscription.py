"""The Subscription root and the events of a streamed reply."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from strawberry.types import Info

from agent import events
from resolvers import live as live_resolvers
from resolvers.context import Context
from schema.inputs import SendMessageInput
from schema.types import Message, ToolCall


@strawberry.type
class UserMessageSaved:
    message: Message


@strawberry.type
class ReplyDelta:
    text: str


@strawberry.type
class ToolCallCompleted:
    tool_call: ToolCall


@strawberry.type
class ReplyCompleted:
    message: Message


ReplyEvent = Annotated[
    UserMessageSaved | ReplyDelta | ToolCallCompleted | ReplyCompleted,
    strawberry.union("ReplyEvent"),
]


def _event(event: events.TurnEvent) -> ReplyEvent:
    match event:
        case events.UserMessageSaved(message=row):
            return UserMessageSaved(message=Message.from_row(row))
        case events.ReplyDelta(text=text):
            return ReplyDelta(text=text)
        case events.ToolCallCompleted(record=record):
            return ToolCallCompleted(tool_call=ToolCall.from_record(record))
        case events.ReplyCompleted(message=row):
            return ReplyCompleted(message=Message.from_row(row))


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Every message persisted in the conversation from now on, whichever "
        "server instance stored it."
    )
    async def message_added(
        self,
        info: Info[Context, None],
        conversation_id: strawberry.ID,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="A cursor of the conversation's messages: deliver the messages "
                "stored after it first (to resume after a dropped socket)."
            ),
        ] = None,
    ) -> AsyncGenerator[Message, None]:
        async for row in live_resolvers.message_added(info.context, conversation_id, after):
            yield Message.from_row(row)

    @strawberry.subscription(
        description="Runs one turn like sendMessage and streams it: UserMessageSaved, then "
        "ReplyDelta and ToolCallCompleted events, then ReplyCompleted."
    )
    async def send_message_stream(
        self, info: Info[Context, None], input: SendMessageInput
    ) -> AsyncGenerator[ReplyEvent, None]:
        async for event in live_resolvers.send_message_stream(
            info.context, input.conversation_id, input.content, input.client_message_id
        ):
            yield _event(event)
