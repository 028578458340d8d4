"""A turn's reply ends with its run (db/reply_end.py: one statement on PostgreSQL, one
statement a part on SQLite): every part written, in one unit of work, or nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import NotFound
from db import agent_runs as run_queries
from db import conversations as conversation_queries
from db import messages as message_queries
from db import users as user_queries
from db.engine import create_engine, create_session_factory
from db.models import (
    AgentRun,
    Conversation,
    Message,
    MessageRole,
    MessageStatus,
    ReplyChunk,
    RunStatus,
)
from db.reply_chunks import Entry, pack, unpack
from db.transactions import write_transaction
from db.types import utcnow
from services import messages as message_service
from services import runs as run_service


@dataclass
class Turn:
    conversation: Conversation
    question: Message
    reply: Message
    earlier: Message
    run_id: uuid.UUID


@pytest.fixture
async def sessions(
    database_urls: dict[str, str], backend: str
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_urls[backend], pool_size=2)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def _turn(sessions: async_sessionmaker[AsyncSession]) -> Turn:
    """A question answered once (`earlier`, COMPLETED) and a reply to it STREAMING, with
    its run RUNNING."""
    async with sessions() as session, write_transaction(session):
        user = await user_queries.create_user(session, f"reply-end-{uuid.uuid4()}")
        conversation = await conversation_queries.add_conversation(session, user.id, "t")
        question = await message_queries.add_message(
            session,
            conversation_id=conversation.id,
            user_id=user.id,
            role=MessageRole.USER,
            content="list my tasks",
        )
        common: dict[str, Any] = {
            "conversation_id": conversation.id,
            "user_id": user.id,
            "parent_id": question.id,
        }
        earlier = await message_queries.add_message(
            session, role=MessageRole.ASSISTANT, content="first answer", **common
        )
        reply = await message_queries.add_message(
            session,
            role=MessageRole.ASSISTANT,
            content="",
            status=MessageStatus.STREAMING,
            meta={"run_id": "kept"},
            **common,
        )
        run = await run_queries.start_run_under_limit(
            session,
            user_id=user.id,
            conversation_id=conversation.id,
            user_message_id=question.id,
            since=utcnow() - timedelta(minutes=1),
            limit=100,
        )
        assert run is not None
        stored = await conversation_queries.get_conversation(session, user.id, conversation.id)
        assert stored is not None
        return Turn(stored, question, reply, earlier, run.id)


def _usage() -> run_service.RunUsage:
    return run_service.RunUsage(
        model="m", prompt_tokens=11, completion_tokens=7, estimated=True, latency_ms=42
    )


async def test_every_part_is_written_together(
    sessions: async_sessionmaker[AsyncSession], backend: str
) -> None:
    turn = await _turn(sessions)
    tool_calls = [{"id": "c1", "name": "list_tasks", "arguments": {}, "result": {"ok": True}}]
    entries: list[Entry] = (
        [(1, 0, "Here ", None), (2, 5, "", tool_calls[0]), (3, 5, "it ", None), (4, 8, "is", None)]
        if backend == "postgres"  # SQLite keeps a stream in memory: nothing to write
        else []
    )
    chunks = pack(entries)
    run = run_service.run_end(
        turn.run_id, RunStatus.COMPLETED, usage=_usage(), reply_id=turn.reply.id
    )
    async with sessions() as session, write_transaction(session):
        conversation, ended = await message_service.end_turn_reply(
            session,
            turn.reply,
            MessageStatus.COMPLETED,
            "Here it is",
            tool_calls,
            {"steps": 2},
            run,
            chunks=chunks,
            replaces=turn.earlier,
        )
    assert conversation.id == turn.conversation.id
    assert conversation.change_seq > turn.conversation.change_seq
    assert conversation.updated_at >= turn.conversation.updated_at
    assert conversation.last_seq == turn.conversation.last_seq
    assert (ended.id, ended.status, ended.content) == (
        turn.reply.id,
        MessageStatus.COMPLETED,
        "Here it is",
    )
    assert ended.tool_calls == tool_calls
    assert ended.meta == {"run_id": "kept", "steps": 2}
    assert turn.earlier.deleted_at is not None  # the caller's copy of the reply replaced
    async with sessions() as session:
        earlier = await session.get(Message, turn.earlier.id)
        assert earlier is not None
        assert earlier.deleted_at is not None
        question = await session.get(Message, turn.question.id)
        assert question is not None
        assert question.deleted_at is None
        stored_run = await session.get(AgentRun, turn.run_id)
        assert stored_run is not None
        assert (stored_run.status, stored_run.reply_id, stored_run.latency_ms) == (
            RunStatus.COMPLETED,
            turn.reply.id,
            42,
        )
        assert (stored_run.model, stored_run.prompt_tokens, stored_run.completion_tokens) == (
            "m",
            11,
            7,
        )
        assert stored_run.usage_estimated is True
        assert stored_run.finished_at is not None
        stored_chunks = (
            await session.scalars(
                select(ReplyChunk)
                .where(ReplyChunk.message_id == turn.reply.id)
                .order_by(ReplyChunk.sequence)
            )
        ).all()
        assert [
            (c.sequence, c.text_offset, c.text, c.tool_call, c.pieces) for c in stored_chunks
        ] == chunks
        assert unpack(stored_chunks, 0) == entries


async def test_a_conversation_deleted_meanwhile_keeps_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    turn = await _turn(sessions)
    async with sessions() as session, write_transaction(session):
        stored = await session.get(Conversation, turn.conversation.id)
        assert stored is not None
        await conversation_queries.soft_delete_conversation(session, stored)
    run = run_service.run_end(turn.run_id, RunStatus.COMPLETED, usage=_usage())
    async with sessions() as session:
        with pytest.raises(NotFound) as raised:
            async with write_transaction(session):
                await message_service.end_turn_reply(
                    session,
                    turn.reply,
                    MessageStatus.STOPPED,
                    "x",
                    [],
                    {},
                    run,
                    replaces=turn.earlier,
                )
        assert "conversation" in str(raised.value)
    async with sessions() as session:
        reply = await session.get(Message, turn.reply.id)
        assert reply is not None
        assert reply.status == MessageStatus.STREAMING
        stored_run = await session.get(AgentRun, turn.run_id)
        assert stored_run is not None
        assert stored_run.status == RunStatus.RUNNING


async def test_a_reply_gone_is_not_found_and_its_run_stays_running(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    turn = await _turn(sessions)
    columns = {c.key: getattr(turn.reply, c.key) for c in Message.__mapper__.column_attrs}
    gone = Message(**{**columns, "id": uuid.uuid4()})
    run = run_service.run_end(turn.run_id, RunStatus.COMPLETED, usage=_usage())
    async with sessions() as session:
        with pytest.raises(NotFound) as raised:
            async with write_transaction(session):
                await message_service.end_turn_reply(
                    session, gone, MessageStatus.COMPLETED, "x", [], {}, run
                )
        assert "message" in str(raised.value)
    async with sessions() as session:
        stored_run = await session.get(AgentRun, turn.run_id)
        assert stored_run is not None
        assert stored_run.status == RunStatus.RUNNING
        conversation = await session.get(Conversation, turn.conversation.id)
        assert conversation is not None
        assert conversation.change_seq == turn.conversation.change_seq
