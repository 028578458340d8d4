"""Subscriptions: messageAdded and sendMessageStream."""

from __future__ import annotations

from collections.abc import AsyncIterator

from agent.events import TurnEvent
from agent.stream import stream_turn
from core.ids import expect_global_id
from core.metrics import tracks_subscription
from db.messages import MESSAGES
from db.models import Message
from resolvers import chat as chat_resolvers
from resolvers.context import Context
from resolvers.pagination import decode_cursor
from services.message_feed import follow_messages


@tracks_subscription("messageAdded")
async def message_added(
    ctx: Context, conversation_id: str, after: str | None = None
) -> AsyncIterator[Message]:
    row_id = expect_global_id(conversation_id, "Conversation", field="conversationId")
    after_seq: int | None = None
    if after is not None:
        (position,) = decode_cursor(ctx.app.cursors, MESSAGES, str(row_id), after)
        assert isinstance(position, int)
        after_seq = position
    user_id = await ctx.user_id()
    async for message in follow_messages(
        ctx.app.session_factory, ctx.app.broker, user_id, row_id, after_seq
    ):
        yield message


@tracks_subscription("sendMessageStream")
async def send_message_stream(
    ctx: Context, conversation_id: str | None, content: str, client_message_id: str | None
) -> AsyncIterator[TurnEvent]:
    """The sendMessage turn, streamed, on a context of its own (`Context.fork`): a long
    turn on one socket never waits on another operation's session."""
    async with ctx.fork() as op:
        async for event in stream_turn(
            lambda listener: chat_resolvers.send_message(
                op, conversation_id, content, client_message_id, listener
            ),
            ctx.settings.ws_queue_size,
        ):
            yield event
