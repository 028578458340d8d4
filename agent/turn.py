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

Exactly once, across a crash: a tool's changes commit only with the reply (and its
provenance, `task_effects`), so a process killed before that commit leaves nothing of
the turn but the question, and one killed after it leaves the whole reply, which the
retry returns. A question answered again (regenerate, or a retry whose earlier reply is
gone) replays the changes earlier replies applied instead of redoing them
(`agent/effects.py`). Every run records what it spent (`agent/usage.py`), also when it
fails or is cancelled mid-stream.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agent.effects import EffectLedger, effects_of
from agent.loop import ToolCallSink, TurnOutcome, run_turn
from agent.prompt import history_messages, system_message
from agent.providers.base import DeltaSink, ModelProvider
from agent.tools import ToolRuntime
from agent.usage import TurnUsage, UsageMeter
from core.config import Settings
from core.errors import AgentTimeout, BadUserInput, NotFound, TaskchatError
from core.logging import get_logger
from core.metrics import AGENT_TURN_SECONDS, AGENT_TURNS
from db.locks import TurnLocks
from db.models import Conversation, Message, RunStatus
from db.transactions import UnitOfWork, unit_of_work, write_transaction
from live.broker import Broker
from services import conversations as conversation_service
from services import messages as message_service
from services import provenance as provenance_service
from services import runs as run_service
from services.validation import CLIENT_MESSAGE_ID_MAX, clean_optional_text, clean_text

log = get_logger("taskchat.turn")


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


class Assistant:
    """Runs turns: the user's message in, the model and its tools, the reply out."""

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
                earlier = await message_service.find_by_client_message_id(session, user_id, key)
            if earlier is not None:
                return await self._replay(session, user_id, earlier, conversation_id, listener)

        # A new conversation gets its id now, so its lock is held before anyone can see it.
        target_id = conversation_id or uuid.uuid4()
        duplicate_of: Message | None = None
        async with self._locks.hold(target_id):
            try:
                async with write_transaction(session):
                    if conversation_id is None:
                        conversation = await conversation_service.start_conversation(
                            session, user_id, text, conversation_id=target_id
                        )
                    else:
                        conversation = await conversation_service.require_conversation(
                            session, user_id, target_id
                        )
                    user_message = await message_service.add_question(
                        session, conversation, user_id, text, key
                    )
                    # refused by the rate limit: the rollback takes the message back too
                    run_id = await self._start_run(session, user_id, user_message)
            except IntegrityError:
                # the same key committed by a concurrent request: its result is returned
                # below, once this lock is released (the replay takes it again)
                if key is None:
                    raise
                async with session.begin():
                    duplicate_of = await message_service.find_by_client_message_id(
                        session, user_id, key
                    )
                if duplicate_of is None:
                    raise
            else:
                await self._saved(user_message, listener)
                reply = await self._answer(
                    session, user_id, user_message, run_id, listener, answered_before=False
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
                conversation = await conversation_service.require_conversation(
                    session, user_id, conversation_id
                )
                question, previous = await message_service.question_to_answer_again(
                    session, conversation.id
                )
                run_id = await self._start_run(session, user_id, question)
            await self._saved(question, listener, publish=False)
            reply = await self._answer(
                session, user_id, question, run_id, listener, replaces=previous
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
                conversation = await conversation_service.require_conversation(
                    session, user_id, earlier.conversation_id
                )
                reply = await message_service.live_reply_to(session, earlier)
            if reply is None:
                async with write_transaction(session):
                    await run_service.close_interrupted_runs(session, earlier.id)
                    run_id = await self._start_run(session, user_id, earlier)
                await self._saved(earlier, listener, publish=False)
                reply = await self._answer(session, user_id, earlier, run_id, listener)
            else:
                await self._saved(earlier, listener, publish=False)
                if listener.delta is not None and reply.content:
                    await listener.delta(reply.content)
                for record in reply.tool_calls:
                    if listener.tool_call_completed is not None:
                        await listener.tool_call_completed(record)
        return TurnRows(await self._reload(session, user_id, conversation.id), earlier, reply)

    async def _saved(
        self, message: Message, listener: TurnListener, *, publish: bool = True
    ) -> None:
        if publish:
            await self._broker.publish(message.conversation_id)
        if listener.user_message_saved is not None:
            await listener.user_message_saved(message)

    async def _start_run(
        self, session: AsyncSession, user_id: uuid.UUID, question: Message
    ) -> uuid.UUID:
        return await run_service.start_run(
            session,
            user_id,
            question.conversation_id,
            question.id,
            limit_per_minute=self._settings.rate_limit_per_minute,
        )

    async def _answer(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        question: Message,
        run_id: uuid.UUID,
        listener: TurnListener,
        *,
        replaces: Message | None = None,
        answered_before: bool = True,
    ) -> Message:
        """The model's answer to `question`, stored with the task changes it made (and
        their provenance) in one unit of work; on any failure nothing of it stays and the
        run is marked, with what the turn spent. `answered_before=False` (a question just
        stored) skips looking for changes earlier replies applied."""
        started = time.perf_counter()
        meter = UsageMeter()
        try:
            async with unit_of_work(session) as work:
                outcome = await self._run_model(
                    session, work, user_id, question, listener, meter, answered_before
                )
                meta = self._reply_metadata(outcome, run_id, started, replaces)
                stored = await work.session()
                reply = await message_service.add_reply(
                    stored, question, outcome.content, outcome.tool_calls, meta, replaces=replaces
                )
                await provenance_service.record_effects(
                    stored, user_id, reply.id, effects_of(outcome.tool_calls)
                )
                await run_service.finish_run(
                    stored,
                    run_id,
                    RunStatus.COMPLETED,
                    usage=_run_usage(outcome.usage, started),
                    reply_id=reply.id,
                )
        except BaseException as error:
            await self._record_failure(session, run_id, error, _run_usage(meter.spent(), started))
            AGENT_TURNS.labels(self._provider.name, _outcome(error)).inc()
            raise
        AGENT_TURNS.labels(self._provider.name, "ok").inc()
        AGENT_TURN_SECONDS.labels(self._provider.name).observe(time.perf_counter() - started)
        await self._broker.publish(question.conversation_id)
        return reply

    async def _run_model(
        self,
        session: AsyncSession,
        work: UnitOfWork,
        user_id: uuid.UUID,
        question: Message,
        listener: TurnListener,
        meter: UsageMeter,
        answered_before: bool,
    ) -> TurnOutcome:
        """The history up to the question (a reply being replaced comes later), then the
        model and its tools under the turn deadline."""
        async with session.begin():
            history = await message_service.history(
                session, question.conversation_id, self._settings.history_limit, question.seq
            )
            earlier = await message_service.replies_to(session, question) if answered_before else []
        ledger = EffectLedger(record for reply in earlier for record in reply.tool_calls or [])
        prompt = [system_message(date.today()), *history_messages(history)]
        try:
            async with asyncio.timeout(self._settings.agent_timeout_seconds) as budget:
                return await run_turn(
                    self._provider,
                    prompt,
                    ToolRuntime(work, user_id, ledger),
                    max_steps=self._settings.agent_max_steps,
                    on_delta=listener.delta,
                    on_tool_call=listener.tool_call_completed,
                    deadline=budget.when(),
                    meter=meter,
                )
        except TimeoutError:
            raise AgentTimeout() from None

    def _reply_metadata(
        self,
        outcome: TurnOutcome,
        run_id: uuid.UUID,
        started: float,
        replaces: Message | None,
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "provider": self._provider.name,
            "model": outcome.model,
            "usage": {
                "prompt_tokens": outcome.usage.prompt_tokens,
                "completion_tokens": outcome.usage.completion_tokens,
                "estimated": outcome.usage.estimated,
            },
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "model_ms": round(outcome.model_seconds * 1000, 1),
            "steps": outcome.steps,
            "run_id": str(run_id),
        }
        if outcome.hit_step_limit:
            meta["step_limit"] = True
        if replaces is not None:
            meta["replaces"] = str(replaces.id)
        return meta

    async def _record_failure(
        self,
        session: AsyncSession,
        run_id: uuid.UUID,
        error: BaseException,
        usage: run_service.RunUsage,
    ) -> None:
        status = (
            RunStatus.CANCELLED if isinstance(error, asyncio.CancelledError) else RunStatus.FAILED
        )
        try:
            # shielded: a cancelled stream must still leave its run marked
            await asyncio.shield(self._mark_run(session, run_id, status, _outcome(error), usage))
        except Exception:
            log.warning("could not record a failed run", run_id=str(run_id))

    async def _mark_run(
        self,
        session: AsyncSession,
        run_id: uuid.UUID,
        status: RunStatus,
        code: str,
        usage: run_service.RunUsage,
    ) -> None:
        async with write_transaction(session):
            await run_service.finish_run(session, run_id, status, code, usage=usage)

    async def _reload(
        self, session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID
    ) -> Conversation:
        async with session.begin():
            conversation = await conversation_service.get_conversation(
                session, user_id, conversation_id
            )
        if conversation is None:  # deleted while the turn ran
            raise NotFound("conversation")
        return conversation


def _run_usage(usage: TurnUsage, started: float) -> run_service.RunUsage:
    """What a run spent, as its record keeps it (also for a reply cut off mid-stream)."""
    return run_service.RunUsage(
        model=usage.model or None,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        estimated=usage.estimated,
        latency_ms=round((time.perf_counter() - started) * 1000),
        spent=usage.steps > 0,
    )


def _outcome(error: BaseException) -> str:
    if isinstance(error, TaskchatError):
        return error.code
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    return "INTERNAL_SERVER_ERROR"
