"""One chat turn, shared by `sendMessage`, `regenerateReply` and `sendMessageStream`.

The shape of a turn, and why:
1. Under the conversation's turn lock (all instances), so concurrent sends to one
   conversation come out question, answer, question, answer.
2. Unit of work 1 stores the user's message and the run record (which the rate limit
   counts), then commits and publishes: a reload shows the question at once.
3. The reply is stored STREAMING in a small unit of its own (any instance can serve it:
   `replyStream`, `activeReply`); its stream is kept by the journal (services/replies.py).
4. The model runs under the turn deadline; its tool calls change tasks inside unit of
   work 2, which also ends the reply: tasks and the reply that reports them commit
   together (a failed turn leaves no task change, and its reply FAILED). A stop commits
   unit 2 with what it has: the text so far and the effects of the tool calls made.
An idempotency key (`clientMessageId`) that was seen before returns the first result;
if that turn failed, the retry runs the turn for the stored message, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agent.effects import EffectLedger, effects_of
from agent.events import ReplyDelta, ToolCallCompleted
from agent.lifecycle import BusyPolicy, ReplyRecorder, StoppableProvider, TurnStopped, turn_lock
from agent.loop import TurnOutcome, run_turn
from agent.prompt import Spoken, history_messages, system_message
from agent.providers.base import ModelProvider
from agent.tools import ToolRuntime
from agent.usage import TurnUsage, UsageMeter
from core.config import Settings
from core.errors import AgentTimeout, BadUserInput, NotFound, TaskchatError
from core.ids import to_global_id
from core.logging import get_logger
from core.metrics import AGENT_TURN_SECONDS, AGENT_TURNS
from db.locks import TurnHold, TurnLocks
from db.models import Conversation, Message, MessageStatus, RunStatus
from db.transactions import UnitOfWork, unit_of_work, write_transaction
from live.broker import Broker, Signal, reply_changed
from services import conversations as conversation_service
from services import messages as message_service
from services import provenance as provenance_service
from services import runs as run_service
from services.replies import MemoryJournal, ReplyJournal, text_of
from services.validation import CLIENT_MESSAGE_ID_MAX, clean_optional_text, clean_text

log = get_logger("taskchat.turn")


@dataclass(slots=True)
class TurnRows:
    conversation: Conversation
    user_message: Message
    reply: Message


@dataclass(slots=True)
class TurnStart:
    """What a turn's first unit of work stored and read: the run, the reply (STREAMING),
    the history the model sees and the replies the question got before."""

    run_id: uuid.UUID
    reply: Message
    history: Sequence[Spoken]
    earlier: list[Message]


@dataclass(slots=True)
class TurnListener:
    """Optional callbacks for a streamed turn, and its stop button."""

    user_message_saved: Callable[[Message], Awaitable[None]] | None = None
    delta: Callable[[ReplyDelta], Awaitable[None]] | None = None
    tool_call_completed: Callable[[ToolCallCompleted], Awaitable[None]] | None = None
    reply_started: Callable[[Message], Awaitable[None]] | None = None
    #: set to stop the turn (its reply ends STOPPED); `stopReply` and INTERRUPT set it
    #: through the broker, from any instance
    stop: asyncio.Event = field(default_factory=asyncio.Event)


#: how long `stopReply` waits for the running turn to store its STOPPED reply before it
#: ends a reply whose turn is gone (its instance died) itself
STOP_WAIT_SECONDS = 5.0
#: how often `stopReply` asks again while it waits (a stop sent before the turn listened)
STOP_RETRY_SECONDS = 0.5


class Assistant:
    """Runs turns: the user's message in, the model and its tools, the reply out."""

    def __init__(
        self,
        settings: Settings,
        provider: ModelProvider,
        locks: TurnLocks,
        broker: Broker,
        journal: ReplyJournal | None = None,
    ) -> None:
        self._settings = settings
        self._provider = provider
        self._locks = locks
        self._broker = broker
        self.journal = journal or MemoryJournal(broker)
        self._lock_wait = settings.agent_timeout_seconds * 4

    async def send_message(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        conversation_id: uuid.UUID | None,
        content: str,
        client_message_id: str | None,
        listener: TurnListener | None = None,
        on_busy: BusyPolicy = BusyPolicy.QUEUE,
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
        policy = on_busy if conversation_id is not None else BusyPolicy.QUEUE
        async with turn_lock(
            self._locks, self._broker, session, target_id, policy, self._lock_wait
        ) as hold:
            started = time.perf_counter()
            try:
                async with write_transaction(session):
                    if conversation_id is None:
                        await conversation_service.start_conversation(
                            session, user_id, text, conversation_id=target_id
                        )
                    run_id = uuid.uuid4()
                    exchange = await message_service.add_exchange(
                        session, user_id, target_id, text, key, {"run_id": str(run_id)}
                    )
                    user_message = exchange.question
                    # refused by the rate limit: the rollback takes the messages back too
                    run_id, history = await run_service.start_run_reading_history(
                        session,
                        user_id,
                        user_message,
                        limit_per_minute=self._settings.rate_limit_per_minute,
                        history_limit=self._settings.history_limit,
                        run_id=run_id,
                    )
                    start = TurnStart(run_id, exchange.reply, history, [])
                    await self._broker.publish_on_commit(
                        session, conversation_service.changed(target_id, user_id)
                    )
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
                # listened to from here: a stop sent while this turn waited for the lock
                # (taken with unit 1's first statement) was for the turn before
                async with self._broker.listen_stop(target_id) as stop_signal:
                    await self._saved(user_message, listener)
                    with _locating(target_id, user_message.id):
                        conversation, reply = await self._answer(
                            session,
                            user_id,
                            user_message,
                            start,
                            listener,
                            stop_signal,
                            started,
                            hold,
                        )
        if duplicate_of is not None:
            return await self._replay(session, user_id, duplicate_of, conversation_id, listener)
        return TurnRows(conversation, user_message, reply)

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
        async with self._locks.hold_in(session, conversation_id) as hold:
            started = time.perf_counter()
            async with write_transaction(session):
                conversation = await conversation_service.require_conversation(
                    session, user_id, conversation_id
                )
                question, previous = await message_service.question_to_answer_again(
                    session, conversation.id
                )
                start = await self._begin_answer(session, user_id, question)
            async with self._broker.listen_stop(conversation_id) as stop_signal:
                await self._saved(question, listener)
                conversation, reply = await self._answer(
                    session,
                    user_id,
                    question,
                    start,
                    listener,
                    stop_signal,
                    started,
                    hold,
                    replaces=previous,
                )
        return TurnRows(conversation, question, reply)

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
        # waits for a turn in flight
        async with self._locks.hold_in(session, earlier.conversation_id) as hold:
            async with session.begin():
                conversation = await conversation_service.require_conversation(
                    session, user_id, earlier.conversation_id
                )
                reply = await message_service.live_reply_to(session, earlier)
            if reply is None:
                started = time.perf_counter()
                async with write_transaction(session):
                    await run_service.close_interrupted_runs(session, earlier.id)
                    start = await self._begin_answer(session, user_id, earlier)
                async with self._broker.listen_stop(earlier.conversation_id) as stop_signal:
                    await self._saved(earlier, listener)
                    with _locating(earlier.conversation_id, earlier.id):
                        conversation, reply = await self._answer(
                            session,
                            user_id,
                            earlier,
                            start,
                            listener,
                            stop_signal,
                            started,
                            hold,
                        )
                return TurnRows(conversation, earlier, reply)
            await self._saved(earlier, listener)
            await self._replay_reply(reply, listener)
        return TurnRows(await self._reload(session, user_id, conversation.id), earlier, reply)

    async def _replay_reply(self, reply: Message, listener: TurnListener) -> None:
        """A stored reply as a stream: numbered as it would have been when it was new."""
        if listener.reply_started is not None:
            await listener.reply_started(reply)
        sequence = 0
        for record in reply.tool_calls:
            sequence += 1
            if listener.tool_call_completed is not None:
                await listener.tool_call_completed(ToolCallCompleted(record, sequence))
        if listener.delta is not None and reply.content:
            await listener.delta(ReplyDelta(reply.content, sequence + 1, 0))

    async def _saved(self, message: Message, listener: TurnListener) -> None:
        if listener.user_message_saved is not None:
            await listener.user_message_saved(message)

    async def _begin_answer(
        self, session: AsyncSession, user_id: uuid.UUID, question: Message
    ) -> TurnStart:
        """Inside a unit of work: the run and the reply (STREAMING) of a question stored
        before, and what the turn reads."""
        run_id = await run_service.start_run(
            session,
            user_id,
            question.conversation_id,
            question.id,
            limit_per_minute=self._settings.rate_limit_per_minute,
        )
        reply = await message_service.start_reply(session, question, {"run_id": str(run_id)})
        # the history up to the question (a reply being replaced comes later), and the
        # replies the question got before (their tool changes are replayed, not redone)
        history = await message_service.history(
            session, question.conversation_id, self._settings.history_limit, question.seq
        )
        earlier = await message_service.replies_to(session, question)
        return TurnStart(run_id, reply, history, earlier)

    async def _answer(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        question: Message,
        start: TurnStart,
        listener: TurnListener,
        stop_signal: Signal,
        started: float,
        hold: TurnHold,
        *,
        replaces: Message | None = None,
    ) -> tuple[Conversation, Message]:
        """The model's answer to `question`, whose reply `start` stored STREAMING: ended
        with the task changes it made (and their provenance) in one unit of work:
        COMPLETED, or STOPPED (what was generated, and the effects of the tool calls made)
        when stopped. On any failure no task change stays, the reply ends FAILED and the
        run is marked, with what the turn spent. Returns the conversation as the reply's
        end left it, and the reply."""
        meter = UsageMeter()
        run_id = start.run_id
        # plain ids: a rollback expires the rows
        reply_id = start.reply.id
        relay = asyncio.create_task(_relay_stop(stop_signal.wait, listener.stop))
        try:
            writer = self.journal.writer(reply_id)
            recorder = ReplyRecorder(writer, listener.delta, listener.tool_call_completed)
            if listener.reply_started is not None:
                await listener.reply_started(start.reply)
            try:
                conversation, reply = await self._run_and_end(
                    session, user_id, start, recorder, listener, started, replaces, meter, hold
                )
            except BaseException as error:
                with contextlib.suppress(Exception):
                    await writer.close()
                await self._record_failure(
                    session,
                    run_id,
                    error,
                    reply_id,
                    recorder.text,
                    _run_usage(meter.spent(), started),
                )
                AGENT_TURNS.labels(self._provider.name, _outcome(error)).inc()
                raise
        finally:
            relay.cancel()
        stopped = reply.status == MessageStatus.STOPPED
        AGENT_TURNS.labels(self._provider.name, "stopped" if stopped else "ok").inc()
        AGENT_TURN_SECONDS.labels(self._provider.name).observe(time.perf_counter() - started)
        return conversation, reply

    async def _run_and_end(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        start: TurnStart,
        recorder: ReplyRecorder,
        listener: TurnListener,
        started: float,
        replaces: Message | None,
        meter: UsageMeter,
        hold: TurnHold,
    ) -> tuple[Conversation, Message]:
        run_id = start.run_id
        async with unit_of_work(session) as work:
            status = MessageStatus.COMPLETED
            try:
                outcome = await self._run_model(
                    work, user_id, start, recorder, listener.stop, meter
                )
                await recorder.complete_to(outcome.content)
            except TurnStopped:
                status = MessageStatus.STOPPED
                # what was spent until the stop, estimated for the step cut off
                outcome = TurnOutcome(
                    content=recorder.text, tool_calls=recorder.tool_calls, usage=meter.spent()
                )
            stored = await work.session()
            meta = self._reply_metadata(outcome, run_id, started, replaces)
            usage = _run_usage(outcome.usage, started)
            if status == MessageStatus.STOPPED:
                meta["stopped"] = True
                run = run_service.run_end(
                    run_id, RunStatus.CANCELLED, "STOPPED", usage=usage, reply_id=start.reply.id
                )
            else:
                run = run_service.run_end(
                    run_id, RunStatus.COMPLETED, usage=usage, reply_id=start.reply.id
                )
            conversation, ended = await message_service.end_turn_reply(
                stored,
                start.reply,
                status,
                outcome.content,
                outcome.tool_calls,
                meta,
                run,
                # the stream's last entries commit with the reply's final status
                chunks=await recorder.hand_over(),
                replaces=replaces,
            )
            await provenance_service.record_effects(
                stored, user_id, ended.id, effects_of(outcome.tool_calls)
            )
            await self._broker.publish_on_commit(
                stored,
                [reply_changed(ended.id), *conversation_service.changed(conversation.id, user_id)],
            )
            # the turn's last unit: the lock goes with its COMMIT (kept if it rolls back,
            # until the failed run is marked)
            hold.let_go_at_commit()
        return conversation, ended

    async def stop_reply(
        self, session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID
    ) -> tuple[Conversation, Message | None]:
        """Stops the conversation's running turn wherever it runs and returns its STOPPED
        reply (`None` when nothing was running). A reply whose turn is gone (its instance
        died) is ended here, under the turn lock, with the text its stream kept."""
        async with session.begin():
            conversation = await conversation_service.require_conversation(
                session, user_id, conversation_id
            )
            active = await message_service.active_reply(session, user_id, conversation_id)
        if active is None:
            return conversation, None
        loop = asyncio.get_running_loop()
        give_up = loop.time() + STOP_WAIT_SECONDS
        current: Message | None = active
        async with self._broker.listen_reply(active.id) as ended:
            while True:
                await self._broker.publish_stop(conversation_id)
                ask_again = min(loop.time() + STOP_RETRY_SECONDS, give_up)
                while True:
                    async with session.begin():
                        current = await message_service.get_reply(session, active.id)
                    if current is None or current.status != MessageStatus.STREAMING:
                        return await self._reload(session, user_id, conversation_id), current
                    if loop.time() >= ask_again:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ended.wait(), ask_again - loop.time())
                if loop.time() >= give_up:
                    break
        current = await self._end_orphan(session, active)
        return await self._reload(session, user_id, conversation_id), current

    async def _end_orphan(self, session: AsyncSession, reply: Message) -> Message | None:
        async with self._locks.try_hold(reply.conversation_id) as held:
            if not held:  # its turn still runs (and takes long to stop): leave it
                async with session.begin():
                    return await message_service.get_reply(session, reply.id)
            text = text_of(
                [e for e in await self.journal.entries_after(reply.id, 0) if e.tool_call is None]
            )
            async with write_transaction(session):
                current = await message_service.get_reply(session, reply.id)
                if current is not None and current.status == MessageStatus.STREAMING:
                    _, current = await message_service.finish_reply(
                        session, current, MessageStatus.STOPPED, text, [], {"stopped": True}
                    )
                await self._broker.publish_on_commit(
                    session,
                    [
                        reply_changed(reply.id),
                        *conversation_service.changed(reply.conversation_id, reply.user_id),
                    ],
                )
        return current

    async def _run_model(
        self,
        work: UnitOfWork,
        user_id: uuid.UUID,
        start: TurnStart,
        recorder: ReplyRecorder,
        stop: asyncio.Event,
        meter: UsageMeter,
    ) -> TurnOutcome:
        """The model and its tools on the history `start` read, under the turn deadline;
        tool changes earlier replies to the same question applied are replayed, not
        redone."""
        ledger = EffectLedger(
            record for reply in start.earlier for record in reply.tool_calls or []
        )
        runtime = ToolRuntime(work, user_id, ledger)
        prompt = [system_message(date.today()), *history_messages(start.history)]
        try:
            async with asyncio.timeout(self._settings.agent_timeout_seconds) as budget:
                return await run_turn(
                    StoppableProvider(self._provider, stop),
                    prompt,
                    runtime,
                    max_steps=self._settings.agent_max_steps,
                    on_delta=recorder.delta,
                    on_tool_call=recorder.tool_call,
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
        reply_id: uuid.UUID,
        text: str,
        usage: run_service.RunUsage,
    ) -> None:
        status = (
            RunStatus.CANCELLED if isinstance(error, asyncio.CancelledError) else RunStatus.FAILED
        )
        try:
            # shielded: a cancelled stream must still leave its run and reply marked
            await asyncio.shield(
                self._mark_run(session, run_id, status, _outcome(error), reply_id, text, usage)
            )
        except Exception:
            log.warning("could not record a failed run", run_id=str(run_id))

    async def _mark_run(
        self,
        session: AsyncSession,
        run_id: uuid.UUID,
        status: RunStatus,
        code: str,
        reply_id: uuid.UUID,
        text: str,
        usage: run_service.RunUsage,
    ) -> None:
        async with write_transaction(session):
            await run_service.finish_run(session, run_id, status, code, usage=usage)
            await message_service.fail_reply(session, reply_id, text, code)
            await self._broker.publish_on_commit(session, [reply_changed(reply_id)])

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


async def _relay_stop(wait: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    await wait()
    stop.set()


@contextlib.contextmanager
def _locating(conversation_id: uuid.UUID, question_id: uuid.UUID) -> Iterator[None]:
    """A turn that fails after its question was stored says where the question is, so a
    client can show it and regenerate the reply (even of a conversation it just began).
    (Ids, not rows: a rollback expires the rows.)"""
    try:
        yield
    except TaskchatError as error:
        error.extensions.setdefault("conversationId", to_global_id("Conversation", conversation_id))
        error.extensions.setdefault("userMessageId", to_global_id("Message", question_id))
        raise
