"""Message use cases of a turn: the question, the reply, the history and retries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import BadUserInput, NotFound
from db import conversations as conversation_queries
from db import messages as message_queries
from db import reply_end as reply_end_queries
from db.agent_runs import RunEnd
from db.models import Conversation, Message, MessageRole, MessageStatus
from db.reply_chunks import ChunkRow
from db.reply_end import ReplyEnd
from db.types import utcnow


@dataclass(frozen=True, slots=True)
class Exchange:
    """A turn's question and its reply (STREAMING, empty), stored together."""

    conversation: Conversation
    question: Message
    reply: Message


async def add_exchange(
    session: AsyncSession,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    content: str,
    client_message_id: str | None,
    reply_meta: dict[str, Any],
) -> Exchange:
    """The user's question and the reply that answers it, STREAMING (empty) from now on,
    in one change of the conversation (`NOT_FOUND` unless it is the user's and live). A
    reply of an earlier turn still STREAMING has lost its turn (the caller holds the turn
    lock): it ends FAILED. The user's row is locked by this (see `record_change`). One
    statement on PostgreSQL (`db.messages.store_exchange`), two or three on SQLite."""
    now = utcnow()
    # positions given below, once the conversation's change has claimed them
    question = message_queries.new_message(
        conversation_id=conversation_id,
        user_id=user_id,
        seq=0,
        role=MessageRole.USER,
        content=content,
        created_at=now,
        client_message_id=client_message_id,
    )
    reply = message_queries.new_message(
        conversation_id=conversation_id,
        user_id=user_id,
        seq=0,
        role=MessageRole.ASSISTANT,
        content="",
        created_at=now,
        parent_id=question.id,
        meta=reply_meta,
        status=MessageStatus.STREAMING,
    )
    if session.get_bind().dialect.name == "postgresql":
        stored = await message_queries.store_exchange(session, question, reply)
        if stored is None:
            raise NotFound("conversation")
        return Exchange(stored, question, reply)
    changed = await conversation_queries.change_conversation_for_turn(
        session, user_id, conversation_id, new_messages=2
    )
    if changed is None:
        raise NotFound("conversation")
    conversation, streaming = changed
    if streaming:
        await message_queries.fail_streaming_replies(session, conversation_id)
    question.seq, reply.seq = conversation.last_seq - 1, conversation.last_seq
    await message_queries.store_messages(session, question, reply)
    return Exchange(conversation, question, reply)


async def start_reply(session: AsyncSession, question: Message, meta: dict[str, Any]) -> Message:
    """The reply to a question stored earlier, STREAMING (empty) when the turn starts
    answering; a reply of an earlier turn still STREAMING has lost its turn (the caller
    holds the turn lock): it ends FAILED."""
    await message_queries.fail_streaming_replies(session, question.conversation_id)
    return await message_queries.add_message(
        session,
        conversation_id=question.conversation_id,
        user_id=question.user_id,
        role=MessageRole.ASSISTANT,
        content="",
        parent_id=question.id,
        meta=meta,
        status=MessageStatus.STREAMING,
    )


async def finish_reply(
    session: AsyncSession,
    reply: Message,
    status: MessageStatus,
    content: str,
    tool_calls: list[dict[str, Any]],
    meta: dict[str, Any],
) -> tuple[Conversation | None, Message]:
    """A reply's end outside its turn (a stop of a reply whose turn is gone; a turn ends
    its reply with `end_turn_reply`): COMPLETED or STOPPED (listed from now on, a change
    of its conversation, which is returned as it is now) or FAILED (no change: no
    conversation returned). `reply` is the row as this session holds it (see
    `db.messages.finish_reply`)."""
    conversation: Conversation | None = None
    if status != MessageStatus.FAILED:
        conversation = await conversation_queries.change_conversation(
            session, reply.user_id, reply.conversation_id
        )
        if conversation is None:
            raise NotFound("conversation")  # deleted meanwhile: nothing stays
    ended = await message_queries.finish_reply(
        session, reply, status=status, content=content, tool_calls=tool_calls, meta=meta
    )
    return conversation, ended


async def end_turn_reply(
    session: AsyncSession,
    reply: Message,
    status: MessageStatus,
    content: str,
    tool_calls: list[dict[str, Any]],
    meta: dict[str, Any],
    run: RunEnd,
    *,
    chunks: Sequence[ChunkRow] = (),
    replaces: Message | None = None,
) -> tuple[Conversation, Message]:
    """A turn's reply ends (COMPLETED or STOPPED) with its run and the last entries of
    its stream, as `finish_reply` ends a reply: the conversation's change and the reply
    it replaces retired (one statement on PostgreSQL: `db.reply_end`). `NOT_FOUND` if
    the conversation was deleted while the turn ran: nothing stays."""
    assert status != MessageStatus.FAILED, "a failed turn's reply ends with fail_reply"
    end = ReplyEnd(
        reply,
        status,
        content,
        tool_calls,
        meta,
        run,
        replaces=replaces,
        chunks=chunks,
    )
    return await reply_end_queries.end_reply(session, end)


async def fail_reply(
    session: AsyncSession, reply_id: uuid.UUID, text_so_far: str, code: str
) -> None:
    """A failed turn's reply: FAILED, listed nowhere; its task changes were rolled back."""
    await message_queries.finish_reply_by_id(
        session,
        reply_id,
        status=MessageStatus.FAILED,
        content=text_so_far,
        tool_calls=[],
        meta={"error_code": code},
    )


async def get_reply(session: AsyncSession, message_id: uuid.UUID) -> Message | None:
    return await message_queries.get_message(session, message_id)


async def active_reply(
    session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> Message | None:
    return (await message_queries.active_replies(session, user_id, [conversation_id])).get(
        conversation_id
    )


async def owned_message(
    session: AsyncSession, user_id: uuid.UUID, message_id: uuid.UUID
) -> Message | None:
    found = await message_queries.get_messages(session, user_id, [message_id])
    return found[0] if found else None


async def find_by_client_message_id(
    session: AsyncSession, user_id: uuid.UUID, client_message_id: str
) -> Message | None:
    return await message_queries.find_by_client_message_id(session, user_id, client_message_id)


async def live_reply_to(session: AsyncSession, question: Message) -> Message | None:
    return await message_queries.live_reply_to(session, question.id)


async def replies_to(session: AsyncSession, question: Message) -> list[Message]:
    """The replies `question` got so far, retired ones too (what their tools did stays)."""
    return await message_queries.replies_to(session, question.id)


async def history(
    session: AsyncSession, conversation_id: uuid.UUID, limit: int, up_to_seq: int
) -> list[message_queries.HistoryLine]:
    return await message_queries.recent_history(session, conversation_id, limit, up_to_seq)


async def question_to_answer_again(
    session: AsyncSession, conversation_id: uuid.UUID
) -> tuple[Message, Message | None]:
    """For regenerate: (the last question, the live reply it replaces or None). A
    conversation whose last turn failed ends on its question, which gets its reply."""
    last = await message_queries.last_live_message(session, conversation_id)
    if last is None:
        raise BadUserInput("the conversation has no message to answer", field="conversationId")
    if last.role != MessageRole.ASSISTANT:
        return last, None
    if last.parent_id is None:
        raise BadUserInput("the last reply cannot be regenerated", field="conversationId")
    question = await session.get(Message, last.parent_id)
    if question is None or question.deleted_at is not None:
        raise BadUserInput("the question of the last reply is gone", field="conversationId")
    return question, last
