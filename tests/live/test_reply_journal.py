"""The reply journal on PostgreSQL: a fast model stream costs one batch per flush
interval, not one write per delta, and reads back whole and in order."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import conversations as conversation_queries
from db import messages as message_queries
from db import users as user_queries
from db.engine import create_engine, create_session_factory
from db.models import Message, MessageRole, MessageStatus, ReplyChunk
from db.reply_chunks import add_chunks
from services.replies import FLUSH_SECONDS, ReplyEntry, TableJournal

DELTAS = 1000


async def streaming_reply(sessions: async_sessionmaker[AsyncSession]) -> Message:
    async with sessions() as session, session.begin():
        user = await user_queries.create_user(session, f"journal-{uuid.uuid4()}")
        conversation = await conversation_queries.add_conversation(session, user.id, "j")
        return await message_queries.add_message(
            session,
            conversation_id=conversation.id,
            user_id=user.id,
            role=MessageRole.ASSISTANT,
            content="",
            status=MessageStatus.STREAMING,
        )


async def test_a_fast_stream_is_written_in_bounded_batches(database_urls: dict[str, str]) -> None:
    engine = create_engine(database_urls["postgres"], pool_size=2)
    sessions = create_session_factory(engine)
    try:
        reply = await streaming_reply(sessions)
        journal = TableJournal(sessions)
        writer = journal.writer(reply.id)
        offset = 0
        started = time.perf_counter()
        for sequence in range(1, DELTAS + 1):
            piece = f"w{sequence} "
            await writer.add(ReplyEntry(sequence, offset, piece))
            offset += len(piece)
            if sequence % 10 == 0:
                await asyncio.sleep(0.01)  # a model streaming ~1000 deltas a second
        await writer.close()
        elapsed = time.perf_counter() - started

        entries = await journal.entries_after(reply.id, 0)
        assert [entry.sequence for entry in entries] == list(range(1, DELTAS + 1))
        assert "".join(entry.text for entry in entries) == "".join(
            f"w{n} " for n in range(1, DELTAS + 1)
        )
        stats = journal.stats
        # a batch of text is one row, however many pieces it holds
        assert await _rows(sessions, reply.id) <= stats.batches
        assert stats.entries == DELTAS
        # one batch per flush interval at most (plus the final one at close)
        assert stats.batches <= elapsed / FLUSH_SECONDS + 2
        print(
            f"\nreply journal: {DELTAS} deltas in {elapsed:.2f} s written in {stats.batches}"
            f" batches (1 INSERT + NOTIFY each): {stats.batches / DELTAS:.3f} statements and"
            f" {stats.seconds / DELTAS * 1000:.3f} ms of database time per delta,"
            f" {stats.seconds / stats.batches * 1000:.2f} ms per batch"
        )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("ending", ["committed", "rolled back"])
async def test_the_last_entries_go_with_the_transaction_that_ends_the_reply(
    database_urls: dict[str, str], ending: str
) -> None:
    """Committed: there, once, with it. Rolled back: `close` writes them on its own."""
    engine = create_engine(database_urls["postgres"], pool_size=3)
    sessions = create_session_factory(engine)
    try:
        reply = await streaming_reply(sessions)
        journal = TableJournal(sessions)
        writer = journal.writer(reply.id)
        for sequence in range(1, 4):
            await writer.add(ReplyEntry(sequence, sequence - 1, "x"))
        async with sessions() as session:
            await session.begin()
            await add_chunks(session, reply.id, await writer.hand_over())
            # not stored until that transaction commits
            assert await journal.entries_after(reply.id, 0) == []
            if ending == "committed":
                await session.commit()
            else:
                await session.rollback()
                await writer.close()
        entries = await journal.entries_after(reply.id, 0)
        assert [entry.sequence for entry in entries] == [1, 2, 3]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("path", ["asyncpg", "sqlalchemy core"])
async def test_a_batch_reads_back_as_written_text_and_tool_calls_alike(
    database_urls: dict[str, str], path: str
) -> None:
    """One statement writes a whole batch: pieces with quotes, backslashes and emoji,
    empty pieces of tool calls (nested JSON, nulls, unicode) read back as they were."""
    from sqlalchemy import event

    engine = create_engine(database_urls["postgres"], pool_size=2)
    if path == "sqlalchemy core":  # anyone observing statements: SQLAlchemy runs them
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: None)
    sessions = create_session_factory(engine)
    try:
        reply = await streaming_reply(sessions)
        journal = TableJournal(sessions)
        writer = journal.writer(reply.id)
        written = [
            ReplyEntry(1, 0, 'it\'s \\ "quoted" '),
            ReplyEntry(2, 18, "", {"id": "call_1", "name": "list_tasks", "result": None}),
            ReplyEntry(3, 18, "naïve 🎉\n"),
            ReplyEntry(4, 26, "", {"args": {"title": "a'b\"c", "tags": [1, 2.5, True]}}),
        ]
        for entry in written:
            await writer.add(entry)
        await writer.close()
        assert await journal.entries_after(reply.id, 0) == written
        assert await journal.entries_after(reply.id, 2) == written[2:]
    finally:
        await engine.dispose()


async def _rows(sessions: async_sessionmaker[AsyncSession], message_id: uuid.UUID) -> int:
    async with sessions() as session:
        found = await session.scalar(
            select(func.count()).select_from(ReplyChunk).where(ReplyChunk.message_id == message_id)
        )
        return int(found or 0)


async def test_pieces_written_together_share_a_row_and_read_back_from_any_position(
    database_urls: dict[str, str],
) -> None:
    """Consecutive pieces of text are one row (a tool call one of its own); read after
    any position, the entries come back as they were numbered, cut by code points."""
    engine = create_engine(database_urls["postgres"], pool_size=2)
    sessions = create_session_factory(engine)
    try:
        reply = await streaming_reply(sessions)
        journal = TableJournal(sessions)
        writer = journal.writer(reply.id)
        written = [
            ReplyEntry(1, 0, "naïve "),
            ReplyEntry(2, 6, "🎉 "),
            ReplyEntry(3, 8, "", {"id": "call_1", "name": "list_tasks"}),
            ReplyEntry(4, 8, "a'b "),
            ReplyEntry(5, 12, "\\end"),
        ]
        for entry in written:
            await writer.add(entry)
        await writer.close()
        assert await _rows(sessions, reply.id) == 3
        for after in range(len(written) + 1):
            assert await journal.entries_after(reply.id, after) == written[after:]
    finally:
        await engine.dispose()
