"""Subscriptions: messageAdded, sendMessageStream, replyStream and conversationEvents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agent.events import ReplyCompleted, ReplyDelta, ReplyStarted, ToolCallCompleted, TurnEvent
from agent.lifecycle import BusyPolicy
from agent.stream import stream_turn
from agent.turn import TurnListener, TurnRows
from core.ids import expect_global_id
from core.metrics import tracks_subscription
from db.messages import MESSAGES
from db.models import Conversation, Message
from resolvers import chat as chat_resolvers
from resolvers.context import Context
from resolvers.pagination import decode_cursor
from services.conversation_feed import follow_conversations
from services.message_feed import follow_messages
from services.replies import ReplyEnded, ReplyEntry, ReplyOpened, follow_reply

#: the cursors of `conversationEvents` (a position in the user's change sequence)
CONVERSATION_EVENTS = "conversation_events"
#: where the WebSocket transport records the operations a client completed itself
COMPLETED_TASKS = "completed_operation_tasks"


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


def _completed_by_client(ctx: Context) -> bool:
    """Did the client complete this operation (rather than drop its socket)? Asked from
    the operation's own task, which the transport noted when the client completed it."""
    return asyncio.current_task() in ctx.extras.get(COMPLETED_TASKS, ())


@tracks_subscription("sendMessageStream")
async def send_message_stream(
    ctx: Context,
    conversation_id: str | None,
    content: str,
    client_message_id: str | None,
    on_busy: BusyPolicy = BusyPolicy.QUEUE,
) -> AsyncIterator[TurnEvent]:
    """The sendMessage turn, streamed, on a context of its own (`Context.fork`) that the
    turn owns: a long turn on one socket never waits on another operation's session, and
    a turn that runs on after its socket dropped keeps its session."""

    async def run(listener: TurnListener) -> TurnRows:
        async with ctx.fork() as op:
            return await chat_resolvers.send_message(
                op, conversation_id, content, client_message_id, listener, on_busy
            )

    async for event in stream_turn(
        run, ctx.settings.ws_queue_size, lambda: _completed_by_client(ctx)
    ):
        yield event


async def reply_stream(
    ctx: Context, message_id: str, after_sequence: int | None
) -> AsyncIterator[TurnEvent]:
    row_id = expect_global_id(message_id, "Message", field="messageId")
    user_id = await ctx.user_id()
    async for item in follow_reply(
        ctx.app.session_factory,
        ctx.app.broker,
        ctx.app.assistant.journal,
        user_id,
        row_id,
        after_sequence,
    ):
        match item:
            case ReplyOpened(message=row):
                yield ReplyStarted(row)
            case ReplyEntry(sequence=sequence, offset=offset, text=text, tool_call=None):
                yield ReplyDelta(text, sequence, offset)
            case ReplyEntry(sequence=sequence, tool_call=record) if record is not None:
                yield ToolCallCompleted(record, sequence)
            case ReplyEnded(message=row):
                yield ReplyCompleted(row)


async def conversation_events(
    ctx: Context, after: str | None
) -> AsyncIterator[tuple[Conversation, str]]:
    """Each changed conversation with the cursor to resume after it."""
    user_id = await ctx.user_id()
    scope = str(user_id)
    position: int | None = None
    if after is not None:
        (decoded,) = ctx.app.cursors.decode(after, CONVERSATION_EVENTS, scope, ["int"])
        assert isinstance(decoded, int)
        position = decoded
    async for conversation in follow_conversations(
        ctx.app.session_factory, ctx.app.broker, user_id, position
    ):
        cursor = ctx.app.cursors.encode(CONVERSATION_EVENTS, scope, [conversation.change_seq])
        yield conversation, cursor
