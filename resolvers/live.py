"""Subscriptions: messageAdded and sendMessageStream.

Each subscription works on a context of its own (`Context.fork`), so a long turn on one
socket never waits on another operation's session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from core.errors import NotFound, TaskchatError
from core.ids import expect_global_id
from db import conversations as conversation_queries
from db import messages as message_queries
from db.models import Message
from resolvers import chat as chat_resolvers
from resolvers import messages as message_resolvers
from resolvers.context import Context
from services.chat import TurnListener, TurnRows

CATCH_UP_BATCH = 100


async def message_added(
    ctx: Context, conversation_id: str, after: str | None = None
) -> AsyncIterator[Message]:
    """Every message stored in the conversation from now on, in order, whichever
    instance stored it. With `after` (a cursor of the conversation's `messages`), the
    messages stored since that one come first: a client that reconnects loses nothing."""
    row_id = expect_global_id(conversation_id, "Conversation", field="conversationId")
    start: int | None = None
    if after is not None:
        spec = message_resolvers.cursor_spec(row_id)
        (position,) = spec.decode(ctx.services.cursors, after)
        assert isinstance(position, int)
        start = position
    async with ctx.fork() as op:
        user_id = await op.user_id()
        # listen first, then read where we start: nothing falls between the two
        async with op.services.broker.listen(row_id) as signal:
            async with op.reading() as session:
                conversation = await conversation_queries.get_conversation(session, user_id, row_id)
            if conversation is None:
                raise NotFound("conversation")
            seen = conversation.last_seq if start is None else start
            if start is not None:
                signal.set()  # catch up before waiting
            while True:
                await op.close()  # an idle subscription holds no session
                await signal.wait()
                while True:
                    async with op.reading() as session:
                        fresh = await message_queries.messages_after(
                            session, user_id, row_id, seen, CATCH_UP_BATCH
                        )
                        if not fresh and not await conversation_queries.get_conversation(
                            session, user_id, row_id
                        ):
                            return  # deleted: the subscription completes
                    for message in fresh:
                        seen = message.seq
                        yield message
                    if len(fresh) < CATCH_UP_BATCH:
                        break


@dataclass(frozen=True, slots=True)
class StreamEvent:
    kind: str  # "user_message" | "delta" | "tool_call" | "completed"
    payload: Any


_DONE = object()


async def send_message_stream(
    ctx: Context,
    conversation_id: str | None,
    content: str,
    client_message_id: str | None,
) -> AsyncIterator[StreamEvent]:
    """The sendMessage turn, streamed. The turn runs in a task that feeds a bounded
    queue: a slow consumer slows the model stream down instead of growing memory. When
    the client stops listening, the task is cancelled and nothing half-done is stored."""
    queue: asyncio.Queue[StreamEvent | object] = asyncio.Queue(ctx.settings.ws_queue_size)

    async def user_message_saved(message: Message) -> None:
        await queue.put(StreamEvent("user_message", message))

    async def delta(text: str) -> None:
        await queue.put(StreamEvent("delta", text))

    async def tool_call_completed(record: dict[str, Any]) -> None:
        await queue.put(StreamEvent("tool_call", record))

    listener = TurnListener(user_message_saved, delta, tool_call_completed)

    async with ctx.fork() as op:

        async def run() -> TurnRows:
            try:
                return await chat_resolvers.send_message(
                    op, conversation_id, content, client_message_id, listener
                )
            finally:
                await queue.put(_DONE)

        turn = asyncio.create_task(run())
        try:
            while True:
                event = await queue.get()
                if event is _DONE:
                    break
                assert isinstance(event, StreamEvent)
                yield event
            rows = await turn  # raises the turn's error, if any
            yield StreamEvent("completed", rows.reply)
        finally:
            if not turn.done():
                turn.cancel()
                with contextlib.suppress(asyncio.CancelledError, TaskchatError, Exception):
                    await asyncio.wait_for(turn, timeout=5)


__all__ = ["StreamEvent", "message_added", "send_message_stream"]
