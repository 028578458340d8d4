"""The Subscription root and the events of a streamed reply."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from strawberry.types import Info

from agent import events
from core.ids import to_global_id
from db import models
from resolvers import live as live_resolvers
from resolvers.context import Context
from schema.enums import BusyPolicy
from schema.inputs import SendMessageInput
from schema.types import Conversation, Message, ToolCall


@strawberry.type
class UserMessageSaved:
    message: Message


@strawberry.type(description="The reply, stored with status STREAMING, before its first delta.")
class ReplyStarted:
    message: Message


@strawberry.type(
    description="`sequence` counts 1, 2, 3, … per reply (over its deltas and tool calls); "
    "`offset` is where `text` starts in the reply's content (in Unicode code points)."
)
class ReplyDelta:
    text: str
    sequence: int
    offset: int


@strawberry.type
class ToolCallCompleted:
    tool_call: ToolCall
    sequence: int = strawberry.field(
        description="Its place in the reply's stream, counted with the deltas'."
    )


@strawberry.type
class ReplyCompleted:
    message: Message


ReplyEvent = Annotated[
    UserMessageSaved | ReplyStarted | ReplyDelta | ToolCallCompleted | ReplyCompleted,
    strawberry.union(
        "ReplyEvent",
        description="A reply's stream ends with ReplyCompleted (status COMPLETED, or STOPPED "
        "after a stop or an interrupt); a failed turn ends with a GraphQL error carrying its "
        "code.",
    ),
]


@strawberry.type
class ConversationUpserted:
    conversation: Conversation
    cursor: str = strawberry.field(description="pass to `after` to resume")


@strawberry.type
class ConversationDeleted:
    id: strawberry.ID
    cursor: str = strawberry.field(description="pass to `after` to resume")


ConversationEvent = Annotated[
    ConversationUpserted | ConversationDeleted, strawberry.union("ConversationEvent")
]


def _conversation_event(row: models.Conversation, cursor: str) -> ConversationEvent:
    if row.deleted_at is not None:
        return ConversationDeleted(
            id=strawberry.ID(to_global_id("Conversation", row.id)), cursor=cursor
        )
    return ConversationUpserted(conversation=Conversation.from_row(row), cursor=cursor)


def _event(event: events.TurnEvent) -> ReplyEvent:
    match event:
        case events.UserMessageSaved(message=row):
            return UserMessageSaved(message=Message.from_row(row))
        case events.ReplyStarted(message=row):
            return ReplyStarted(message=Message.from_row(row))
        case events.ReplyDelta(text=text, sequence=sequence, offset=offset):
            return ReplyDelta(text=text, sequence=sequence, offset=offset)
        case events.ToolCallCompleted(record=record, sequence=sequence):
            return ToolCallCompleted(tool_call=ToolCall.from_record(record), sequence=sequence)
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
            info.context,
            input.conversation_id,
            input.content,
            input.client_message_id,
            input.on_busy or BusyPolicy.QUEUE,
        ):
            yield _event(event)

    @strawberry.subscription(
        description="Joins a reply from any instance: its events after `afterSequence` (all "
        "when omitted), then live ones, then ReplyCompleted; a finished reply yields "
        "ReplyCompleted at once."
    )
    async def reply_stream(
        self,
        info: Info[Context, None],
        message_id: strawberry.ID,
        after_sequence: int | None = None,
    ) -> AsyncGenerator[ReplyEvent, None]:
        async for event in live_resolvers.reply_stream(info.context, message_id, after_sequence):
            yield _event(event)

    @strawberry.subscription(
        description="The viewer's conversations as they change on any instance: created, "
        "updated (renamed, archived, restored, a new message), deleted."
    )
    async def conversation_events(
        self, info: Info[Context, None], after: str | None = None
    ) -> AsyncGenerator[ConversationEvent, None]:
        async for row, cursor in live_resolvers.conversation_events(info.context, after):
            yield _conversation_event(row, cursor)
