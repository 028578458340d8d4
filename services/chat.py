"""One chat turn, shared by `sendMessage`, `regenerateReply` and `sendMessageStream`.

The shape of a turn, and why:
1. Under the conversation's turn lock (all instances), so concurrent sends to one
   conversation come out question, answer, question, answer.
2. Unit of work 1 stores the user's message and the run record (which the rate limit
   counts), then commits and publishes: a reload shows the question at once.
3. The model runs under the turn deadline; its tool calls change tasks inside unit of
   work 2, which also stores the reply: tasks and the reply that reports them commit
   together, or not at all (a failed turn leaves only the user's message).
An idempotency key (`clientMessageId`) that was seen before returns the first result;
if that turn failed, the retry runs the turn for the stored message, once.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agent.loop import ToolCallSink, run_turn
from agent.prompt import history_messages, system_message
from agent.providers.base import DeltaSink, ModelProvider
from agent.tools import ToolRuntime
from core.config import Settings
from core.errors import AgentTimeout, BadUserInput, NotFound, RateLimited, TaskchatError
from core.logging import get_logger
from core.metrics import AGENT_TURN_SECONDS, AGENT_TURNS
from db import agent_runs as run_queries
from db import conversations as conversation_queries
from db import messages as message_queries
from db import users as user_queries
from db.locks import TurnLocks
from db.models import Conversation, Message, MessageRole, RunStatus
from db.transactions import write_transaction
from db.types import utcnow
from live.broker import Broker
from services.conversations import require_conversation, title_from_message
from services.validation import CLIENT_MESSAGE_ID_MAX, clean_optional_text, clean_text

log = get_logger("taskchat.chat")


@dataclass(slots=True)
class TurnRows:
    conversation: Conversation
    user_message: Message
    reply: Message


@dataclass(slots=True)
class TurnListener:
    """Optional callbacks for a streamed turn."""

    user_message_saved: Callable[[Message], Awaitable[None]] | None = None
    delta: DeltaSink | None = None
    tool_call_completed: ToolCallSink | None = None


class ChatService:
    def __init__(
        self,
        settings: Settings,
        provider: ModelProvider,
        locks: TurnLocks,
        broker: Broker,
    ) -> None:
        self._settings = settings
        self._provider = provider
        self._locks = locks
        self._broker = broker

    @property
    def provider(self) -> ModelProvider:
        return self._provider

    async def send_message(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        conversation_id: uuid.UUID | None,
        content: str,
        client_message_id: str | None,
        listener: TurnListener | None = None,
    ) -> TurnRows:
        listener = listener or TurnListener()
        text = clean_text(content, "content", self._settings.max_message_chars)
        key = clean_optional_text(client_message_id, "clientMessageId", CLIENT_MESSAGE_ID_MAX)

        if key is not None:
            async with session.begin():
                earlier = await message_queries.find_by_client_message_id(session, user_id, key)
            if earlier is not None:
                return await self._replay(session, user_id, earlier, conversation_id, listener)

        # A new conversation gets its id now, so its lock is held before anyone can see it.
        target_id = conversation_id or uuid.uuid4()
        duplicate_of: Message | None = None
        async with self._locks.hold(target_id):
            try:
                async with write_transaction(session):
                    if conversation_id is None:
                        conversation = await conversation_queries.add_conversation(
                            session, user_id, title_from_message(text), conversation_id=target_id
                        )
                    else:
                        conversation = await require_conversation(session, user_id, target_id)
                    user_message = await message_queries.add_message(
                        session,
                        conversation_id=conversation.id,
                        user_id=user_id,
                        role=MessageRole.USER,
                        content=text,
                        client_message_id=key,
                    )
                    # refused by the rate limit: the rollback takes the message back too
                    run_id = await self._start_run(session, user_id, conversation.id, user_message)
            except IntegrityError:
                # the same key committed by a concurrent request: its result is returned
                # below, once this lock is released (the replay takes it again)
                if key is None:
                    raise
                async with session.begin():
                    duplicate_of = await message_queries.find_by_client_message_id(
                        session, user_id, key
                    )
                if duplicate_of is None:
                    raise
            else:
                await self._saved(conversation.id, user_message, listener)
                reply = await self._answer(
                    session, user_id, conversation, user_message, run_id, listener
                )
        if duplicate_of is not None:
            return await self._replay(session, user_id, duplicate_of, conversation_id, listener)
        return TurnRows(await self._reload(session, user_id, conversation.id), user_message, reply)

    async def regenerate(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        conversation_id: uuid.UUID,
        listener: TurnListener | None = None,
    ) -> TurnRows:
        """Replaces the last reply (soft-deleting it) with a new run on the same history.
        A conversation whose last turn failed gets the reply it is missing."""
        listener = listener or TurnListener()
        async with self._locks.hold(conversation_id):
            async with write_transaction(session):
                conversation = await require_conversation(session, user_id, conversation_id)
                last = await message_queries.last_live_message(session, conversation.id)
                if last is None:
                    raise BadUserInput(
                        "the conversation has no message to answer", field="conversationId"
                    )
                if last.role == MessageRole.ASSISTANT:
                    if last.parent_id is None:
                        raise BadUserInput(
                            "the last reply cannot be regenerated", field="conversationId"
                        )
                    question = await session.get(Message, last.parent_id)
                    if question is None or question.deleted_at is not None:
                        raise BadUserInput(
                            "the question of the last reply is gone", field="conversationId"
                        )
                else:
                    question = last
                run_id = await self._start_run(session, user_id, conversation.id, question)
            await self._saved(conversation.id, question, listener, publish=False)
            previous = last if last.role == MessageRole.ASSISTANT else None
            reply = await self._answer(
                session, user_id, conversation, question, run_id, listener, replaces=previous
            )
        return TurnRows(await self._reload(session, user_id, conversation.id), question, reply)

    # --- steps ------------------------------------------------------------------------

    async def _replay(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        earlier: Message,
        conversation_id: uuid.UUID | None,
        listener: TurnListener,
    ) -> TurnRows:
        """A retry: the first result, or (if that turn failed) the turn it is missing."""
        if conversation_id is not None and earlier.conversation_id != conversation_id:
            raise BadUserInput(
                "clientMessageId was already used in another conversation", field="clientMessageId"
            )
        if earlier.deleted_at is not None:
            raise NotFound("conversation")
        async with self._locks.hold(earlier.conversation_id):  # waits for a turn in flight
            async with session.begin():
                conversation = await require_conversation(session, user_id, earlier.conversation_id)
                reply = await message_queries.live_reply_to(session, earlier.id)
            if reply is None:
                async with write_transaction(session):
                    run_id = await self._start_run(session, user_id, conversation.id, earlier)
                await self._saved(conversation.id, earlier, listener, publish=False)
                reply = await self._answer(
                    session, user_id, conversation, earlier, run_id, listener
                )
            else:
                await self._saved(conversation.id, earlier, listener, publish=False)
                if listener.delta is not None and reply.content:
                    await listener.delta(reply.content)
                for record in reply.tool_calls:
                    if listener.tool_call_completed is not None:
                        await listener.tool_call_completed(record)
        return TurnRows(await self._reload(session, user_id, conversation.id), earlier, reply)

    async def _saved(
        self,
        conversation_id: uuid.UUID,
        message: Message,
        listener: TurnListener,
        *,
        publish: bool = True,
    ) -> None:
        if publish:
            await self._broker.publish(conversation_id, message.id)
        if listener.user_message_saved is not None:
            await listener.user_message_saved(message)

    async def _start_run(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        conversation_id: uuid.UUID,
        question: Message,
    ) -> uuid.UUID:
        """Records a turn about to run, unless the user is over the rate limit."""
        await self._check_rate_limit(session, user_id)
        run = await run_queries.start_run(
            session, user_id=user_id, conversation_id=conversation_id, user_message_id=question.id
        )
        return run.id

    async def _check_rate_limit(self, session: AsyncSession, user_id: uuid.UUID) -> None:
        # concurrent turns of one user count one after another, on every instance
        await user_queries.lock_user(session, user_id)
        now = utcnow()
        count, oldest = await run_queries.runs_since(session, user_id, now - run_queries.WINDOW)
        if count >= self._settings.rate_limit_per_minute:
            retry_after = 1
            if oldest is not None:
                retry_after = max(1, math.ceil((oldest + run_queries.WINDOW - now).total_seconds()))
            raise RateLimited(retry_after)

    async def _answer(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        conversation: Conversation,
        question: Message,
        run_id: uuid.UUID,
        listener: TurnListener,
        *,
        replaces: Message | None = None,
    ) -> Message:
        provider = self._provider.name
        started = time.perf_counter()
        try:
            async with session.begin():
                history = await message_queries.recent_history(
                    session,
                    conversation.id,
                    self._settings.history_limit,
                    up_to_seq=question.seq,  # the reply being replaced comes later
                )
            prompt = [system_message(date.today()), *history_messages(history)]
            # The unit of work (task changes + reply) opens at the first tool call, or
            # below for the reply; a failure anywhere rolls all of it back.
            runtime = ToolRuntime(session, user_id)
            try:
                async with asyncio.timeout(self._settings.agent_timeout_seconds) as budget:
                    outcome = await run_turn(
                        self._provider,
                        prompt,
                        runtime,
                        max_steps=self._settings.agent_max_steps,
                        on_delta=listener.delta,
                        on_tool_call=listener.tool_call_completed,
                        deadline=budget.when(),
                    )
            except TimeoutError:
                raise AgentTimeout() from None
            await runtime.begin()
            elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
            meta: dict[str, Any] = {
                "provider": provider,
                "model": outcome.model,
                "usage": {
                    "prompt_tokens": outcome.prompt_tokens,
                    "completion_tokens": outcome.completion_tokens,
                },
                "latency_ms": elapsed_ms,
                "model_ms": round(outcome.model_seconds * 1000, 1),
                "steps": outcome.steps,
                "run_id": str(run_id),
            }
            if outcome.hit_step_limit:
                meta["step_limit"] = True
            if replaces is not None:
                await message_queries.soft_delete_message(session, replaces.id)
                meta["replaces"] = str(replaces.id)
            reply = await message_queries.add_message(
                session,
                conversation_id=conversation.id,
                user_id=user_id,
                role=MessageRole.ASSISTANT,
                content=outcome.content,
                tool_calls=outcome.tool_calls,
                parent_id=question.id,
                meta=meta,
            )
            await run_queries.finish_run(session, run_id, RunStatus.COMPLETED)
            await session.commit()
        except BaseException as error:
            await self._record_failure(session, run_id, error)
            AGENT_TURNS.labels(provider, _outcome(error)).inc()
            raise
        AGENT_TURNS.labels(provider, "ok").inc()
        AGENT_TURN_SECONDS.labels(provider).observe(time.perf_counter() - started)
        await self._broker.publish(conversation.id, reply.id)
        return reply

    async def _record_failure(
        self, session: AsyncSession, run_id: uuid.UUID, error: BaseException
    ) -> None:
        status = (
            RunStatus.CANCELLED if isinstance(error, asyncio.CancelledError) else RunStatus.FAILED
        )
        try:
            # shielded: a cancelled stream must still leave its run marked
            await asyncio.shield(self._mark_run(session, run_id, status, _outcome(error)))
        except Exception:
            log.warning("could not record a failed run", run_id=str(run_id))

    async def _mark_run(
        self, session: AsyncSession, run_id: uuid.UUID, status: RunStatus, code: str
    ) -> None:
        if session.in_transaction():
            await session.rollback()
        async with write_transaction(session):
            await run_queries.finish_run(session, run_id, status, code)

    async def _reload(
        self, session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID
    ) -> Conversation:
        async with session.begin():
            conversation = await conversation_queries.get_conversation(
                session, user_id, conversation_id
            )
        if conversation is None:  # deleted while the turn ran
            raise NotFound("conversation")
        return conversation


def _outcome(error: BaseException) -> str:
    if isinstance(error, TaskchatError):
        return error.code
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    return "INTERNAL_SERVER_ERROR"
