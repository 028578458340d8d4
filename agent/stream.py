"""A turn as a stream of events, for `sendMessageStream`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from agent.events import (
    ReplyCompleted,
    ReplyDelta,
    ReplyStarted,
    ToolCallCompleted,
    TurnEvent,
    UserMessageSaved,
)
from agent.turn import TurnListener, TurnRows
from core.errors import TaskchatError
from core.logging import get_logger
from db.models import Message

log = get_logger("taskchat.stream")

#: how long a cancelled or stopped turn may take to end before the stream gives up on it
CANCEL_GRACE_SECONDS = 5

_DONE = object()
#: turns that run on after their client went away (resumable with `replyStream`)
_DETACHED: set[asyncio.Task[TurnRows]] = set()


async def stream_turn(
    run: Callable[[TurnListener], Awaitable[TurnRows]],
    queue_size: int,
    completed_by_client: Callable[[], bool] = lambda: True,
) -> AsyncIterator[TurnEvent]:
    """Runs the turn in a task that feeds a bounded queue: a slow consumer slows the model
    stream down instead of growing memory.

    When the consumer stops listening before the end: if the client completed the
    operation (`completed_by_client`), the turn is stopped and its reply ends STOPPED
    (with the effects of the tool calls made); if the client went away (a dropped socket)
    after the reply was stored, the turn runs on to its end, bounded by the agent timeout,
    and any client can rejoin it (`replyStream`). Before the reply was stored there is
    nothing to resume: the turn is cancelled and its unit of work rolls back."""
    queue: asyncio.Queue[TurnEvent | object] = asyncio.Queue(queue_size)
    listening = True
    reply_stored = False

    async def put(event: TurnEvent) -> None:
        if listening:
            await queue.put(event)

    async def user_message_saved(message: Message) -> None:
        await put(UserMessageSaved(message))

    async def reply_started(message: Message) -> None:
        nonlocal reply_stored
        reply_stored = True
        await put(ReplyStarted(message))

    listener = TurnListener(user_message_saved, put, put, reply_started)

    async def turn_then_done() -> TurnRows:
        try:
            return await run(listener)
        finally:
            if listening:
                await queue.put(_DONE)

    turn = asyncio.create_task(turn_then_done())
    try:
        while (event := await queue.get()) is not _DONE:
            assert isinstance(
                event, UserMessageSaved | ReplyStarted | ReplyDelta | ToolCallCompleted
            )
            yield event
        rows = await turn  # raises the turn's error, if any
        yield ReplyCompleted(rows.reply)
    finally:
        if not turn.done():
            listening = False
            while not queue.empty():  # a put blocked on a full queue goes on
                queue.get_nowait()
            if not reply_stored:
                turn.cancel()
                await _wait_ended(turn)
            elif completed_by_client():
                listener.stop.set()
                await _wait_ended(turn)
            else:
                _DETACHED.add(turn)
                turn.add_done_callback(_forget)


def _forget(turn: asyncio.Task[TurnRows]) -> None:
    _DETACHED.discard(turn)
    if not turn.cancelled() and isinstance(turn.exception(), Exception):
        error = turn.exception()
        if not isinstance(error, TaskchatError):
            log.error("a detached turn failed", exc_info=error)


async def _wait_ended(turn: asyncio.Task[TurnRows]) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(turn), timeout=CANCEL_GRACE_SECONDS)
    except (asyncio.CancelledError, TaskchatError):
        pass  # cancelled as asked, or it failed by itself meanwhile: the client is gone
    except TimeoutError:
        log.warning("a cancelled turn did not end in time")
    except Exception:
        log.exception("a cancelled turn failed while ending")
