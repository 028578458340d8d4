"""A turn as a stream of events, for `sendMessageStream`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from agent.events import ReplyCompleted, ReplyDelta, ToolCallCompleted, TurnEvent, UserMessageSaved
from agent.turn import TurnListener, TurnRows
from core.errors import TaskchatError
from core.logging import get_logger
from db.models import Message

log = get_logger("taskchat.stream")

#: how long a cancelled turn may take to roll back before the stream gives up on it
CANCEL_GRACE_SECONDS = 5

_DONE = object()


async def stream_turn(
    run: Callable[[TurnListener], Awaitable[TurnRows]], queue_size: int
) -> AsyncIterator[TurnEvent]:
    """Runs the turn in a task that feeds a bounded queue: a slow consumer slows the model
    stream down instead of growing memory. When the consumer stops listening, the turn is
    cancelled, and its unit of work rolls back: nothing half-done is stored."""
    queue: asyncio.Queue[TurnEvent | object] = asyncio.Queue(queue_size)

    async def user_message_saved(message: Message) -> None:
        await queue.put(UserMessageSaved(message))

    async def delta(text: str) -> None:
        await queue.put(ReplyDelta(text))

    async def tool_call_completed(record: dict[str, Any]) -> None:
        await queue.put(ToolCallCompleted(record))

    listener = TurnListener(user_message_saved, delta, tool_call_completed)

    async def turn_then_done() -> TurnRows:
        try:
            return await run(listener)
        finally:
            await queue.put(_DONE)

    turn = asyncio.create_task(turn_then_done())
    try:
        while (event := await queue.get()) is not _DONE:
            assert isinstance(event, UserMessageSaved | ReplyDelta | ToolCallCompleted)
            yield event
        rows = await turn  # raises the turn's error, if any
        yield ReplyCompleted(rows.reply)
    finally:
        if not turn.done():
            turn.cancel()
            await _wait_cancelled(turn)


async def _wait_cancelled(turn: asyncio.Task[TurnRows]) -> None:
    try:
        await asyncio.wait_for(turn, timeout=CANCEL_GRACE_SECONDS)
    except (asyncio.CancelledError, TaskchatError):
        pass  # cancelled as asked, or it failed by itself meanwhile: the client is gone
    except TimeoutError:
        log.warning("a cancelled turn did not end in time")
    except Exception:
        log.exception("a cancelled turn failed while ending")
