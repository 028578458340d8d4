"""The reply lifecycle of a turn: stop, a numbered stream, and what a second message does
while a reply is generated.

- A stop (`stopReply`, an `INTERRUPT`, a client completing its `sendMessageStream`)
  sets the turn's stop event; the model call in flight is abandoned at once (a tool call
  in flight finishes first: it is short, and its effect is then kept), and the turn
  commits what it has as a STOPPED reply, with the effects of the tool calls made.
- `ReplyRecorder` numbers the stream (sequence 1, 2, 3, … over text and tool calls,
  offsets in code points), keeps it in the journal (services/replies.py) and forwards it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agent.events import ReplyDelta, ToolCallCompleted
from agent.providers.base import ChatMessage, DeltaSink, ModelProvider, ModelReply, ToolSpec
from core.errors import AgentTimeout, ConversationBusy
from db.locks import HELD_APART, TurnHold, TurnLocks
from live.broker import Broker
from services.replies import ChunkRow, ReplyEntry, ReplyWriter

#: how often an INTERRUPT asks the running turn again while it waits for the lock
INTERRUPT_RETRY_SECONDS = 0.05


class BusyPolicy(enum.StrEnum):
    """What a message sent while a reply is generated does."""

    QUEUE = "QUEUE"
    REJECT = "REJECT"
    INTERRUPT = "INTERRUPT"


class TurnStopped(Exception):
    """The turn was asked to stop: what it generated so far is its reply."""


class StoppableProvider:
    """The turn's model, abandoned (its request cancelled) as soon as `stop` is set."""

    def __init__(self, provider: ModelProvider, stop: asyncio.Event) -> None:
        self._provider = provider
        self._stop = stop
        self.name = provider.name

    async def complete(
        self,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        *,
        on_delta: DeltaSink | None = None,
        deadline: float | None = None,
    ) -> ModelReply:
        if self._stop.is_set():
            raise TurnStopped()
        call = asyncio.ensure_future(
            self._provider.complete(messages, tools, on_delta=on_delta, deadline=deadline)
        )
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({call, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not call.done():
                call.cancel()
                with contextlib.suppress(BaseException):
                    await call
        if call.cancelled() or not call.done():
            raise TurnStopped()
        return call.result()

    async def aclose(self) -> None:
        return None


class ReplyRecorder:
    """Numbers the reply's stream, keeps it (`writer`) and forwards it (`sinks`)."""

    def __init__(
        self,
        writer: ReplyWriter,
        on_delta: Any = None,
        on_tool_call: Any = None,
    ) -> None:
        self._writer = writer
        self._on_delta = on_delta
        self._on_tool_call = on_tool_call
        self.sequence = 0
        self._text: list[str] = []
        self._length = 0
        self.tool_calls: list[dict[str, Any]] = []

    @property
    def text(self) -> str:
        return "".join(self._text)

    async def delta(self, piece: str) -> None:
        if not piece:
            return
        self.sequence += 1
        event = ReplyDelta(piece, self.sequence, self._length)
        self._text.append(piece)
        self._length += len(piece)
        await self._writer.add(ReplyEntry(event.sequence, event.offset, piece))
        if self._on_delta is not None:
            await self._on_delta(event)

    async def tool_call(self, record: dict[str, Any]) -> None:
        self.sequence += 1
        self.tool_calls.append(record)
        await self._writer.add(ReplyEntry(self.sequence, self._length, "", record))
        if self._on_tool_call is not None:
            await self._on_tool_call(ToolCallCompleted(record, self.sequence))

    async def close(self) -> None:
        await self._writer.close()

    async def hand_over(self) -> list[ChunkRow]:
        """The stream's last entries, for the transaction that ends the reply to write."""
        return await self._writer.hand_over()

    async def complete_to(self, content: str) -> None:
        """The stored content is what was streamed; a provider that did not stream (all)
        of it gets the rest sent as one more delta."""
        streamed = self.text
        if content != streamed and content.startswith(streamed):
            await self.delta(content[len(streamed) :])


@contextlib.asynccontextmanager
async def turn_lock(
    locks: TurnLocks,
    broker: Broker,
    session: AsyncSession,
    conversation_id: uuid.UUID,
    policy: BusyPolicy,
    wait_seconds: float,
) -> AsyncIterator[TurnHold]:
    """The conversation's turn lock, for a turn on `session`, as `policy` says: wait for
    it (QUEUE; taken with the turn's first statement where it lives on the session's
    connection, db/locks.py), refuse at once (REJECT: `CONVERSATION_BUSY`), or stop the
    running turn, wherever it runs, and take it as soon as that turn has stored its
    STOPPED reply (INTERRUPT)."""
    if policy == BusyPolicy.QUEUE:
        async with locks.hold_in(session, conversation_id) as hold:
            yield hold
        return
    deadline = time.monotonic() + wait_seconds
    while True:
        async with locks.try_hold(conversation_id) as held:
            if held:
                yield HELD_APART
                return
        if policy == BusyPolicy.REJECT:
            raise ConversationBusy()
        if time.monotonic() > deadline:
            raise AgentTimeout()
        await broker.publish_stop(conversation_id)
        await asyncio.sleep(INTERRUPT_RETRY_SECONDS)
