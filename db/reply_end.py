"""A turn's reply ends with its run, in the unit of work that keeps the turn's task
changes: the conversation's change (the user's next change position, `updated_at`),
the reply's final state, the reply it replaces retired (a regeneration), its run's end
and the last entries of its stream.

On PostgreSQL that is one statement (one round trip, where it took four): each part a
data-modifying CTE that runs only when the conversation is still there, waiting for the
part before it (it reads that part's rows), so its rows lock in this order: the user's
and the conversation's first (as every writer of a conversation takes them), then the
reply's, the run's, the stream entries' and the replaced reply's. On SQLite (whose
stream is kept in memory: no entries to write), the same parts one statement each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    Text,
    Uuid,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from core.errors import NotFound
from db import agent_runs as run_queries
from db import conversations as conversation_queries
from db import driver
from db import messages as message_queries
from db.models import Conversation, Message, MessageStatus, ReplyChunk
from db.reply_chunks import ChunkRow, add_chunks, chunk_columns
from db.types import UTCDateTime, utcnow


@dataclass(frozen=True, slots=True)
class ReplyEnd:
    """What ends: `reply` as this transaction stored or read it (its metadata is kept and
    extended by `meta`), its status (COMPLETED or STOPPED: a listed reply), text and
    tool calls; the run; the reply it replaces; the stream's entries still unwritten."""

    reply: Message
    status: MessageStatus
    content: str
    tool_calls: list[dict[str, Any]]
    meta: dict[str, Any]
    run: run_queries.RunEnd
    replaces: Message | None = None
    chunks: Sequence[ChunkRow] = field(default_factory=tuple)


def _statement() -> driver.Kept:
    def after(part: Any) -> Any:
        return exists(select(literal_column("1")).select_from(part))

    changed = conversation_queries.change_on_postgres().cte("changed")
    ended = message_queries.finish_reply_statement("reply_", where=after(changed)).cte("ended")
    retired = (
        update(Message)
        .where(Message.id == bindparam("retired_id", type_=Uuid()), after(changed))
        .values(deleted_at=bindparam("retired_at", type_=UTCDateTime()))
        .cte("retired")
    )
    batch = (
        func.unnest(
            bindparam("chunk_sequences", type_=ARRAY(Integer)),
            bindparam("chunk_offsets", type_=ARRAY(Integer)),
            bindparam("chunk_texts", type_=ARRAY(Text)),
            bindparam("chunk_tool_calls", type_=ARRAY(Text)),
            bindparam("chunk_pieces", type_=ARRAY(Text)),
        )
        .table_valued("sequence", "text_offset", "text", "tool_call", "pieces")
        .render_derived(name="batch")
    )
    chunks = (
        insert(ReplyChunk)
        .from_select(
            ["message_id", "sequence", "text_offset", "text", "tool_call", "pieces"],
            select(
                ended.c.id,
                batch.c.sequence,
                batch.c.text_offset,
                batch.c.text,
                func.cast(batch.c.tool_call, JSONB),
                func.cast(batch.c.pieces, JSONB),
            )
            .select_from(ended)
            .join(batch, true()),
        )
        .cte("chunks")
    )
    run = run_queries.finish_run_statement("run_").where(after(ended)).cte("run_end")
    return driver.Kept(
        select(changed, ended)
        .add_cte(retired, chunks, run)
        .select_from(changed)
        .outerjoin(ended, true())
    )


_END_ON_POSTGRES = _statement()
_CONVERSATION_COLUMNS = len(Conversation.__table__.columns)


async def end_reply(session: AsyncSession, end: ReplyEnd) -> tuple[Conversation, Message]:
    """The conversation as the reply's end left it, and the reply. `NOT_FOUND` if the
    conversation was deleted meanwhile (or the reply): nothing is written then, but
    what the caller's rollback takes back."""
    retired_at = utcnow()
    if session.get_bind().dialect.name != "postgresql":
        ended = await _end_one_by_one(session, end, retired_at)
    else:
        ended = await _end_in_one(session, end, retired_at)
    if end.replaces is not None:  # the caller's copy, as the statement left the row
        set_committed_value(end.replaces, "deleted_at", retired_at)
    return ended


async def _end_in_one(
    session: AsyncSession, end: ReplyEnd, retired_at: datetime
) -> tuple[Conversation, Message]:
    sequences, offsets, texts, tool_calls, pieces = chunk_columns(end.chunks)
    values = {
        **conversation_queries.change_values(end.reply.user_id, end.reply.conversation_id),
        **message_queries.finish_reply_values(
            end.reply, end.status, end.content, end.tool_calls, end.meta, "reply_"
        ),
        **run_queries.run_end_values(end.run, "run_"),
        "retired_id": None if end.replaces is None else end.replaces.id,
        "retired_at": retired_at,
        "chunk_sequences": sequences,
        "chunk_offsets": offsets,
        "chunk_texts": texts,
        "chunk_tool_calls": tool_calls,
        "chunk_pieces": pieces,
    }
    row = await driver.first(session, _END_ON_POSTGRES, values)
    if row is None:
        raise NotFound("conversation")
    if row[_CONVERSATION_COLUMNS] is None:
        raise NotFound("message")
    conversation = conversation_queries.refreshed_conversation(session, row[:_CONVERSATION_COLUMNS])
    return conversation, message_queries.refreshed_message(session, row[_CONVERSATION_COLUMNS:])


async def _end_one_by_one(
    session: AsyncSession, end: ReplyEnd, retired_at: datetime
) -> tuple[Conversation, Message]:
    conversation = await conversation_queries.change_conversation(
        session, end.reply.user_id, end.reply.conversation_id
    )
    if conversation is None:
        raise NotFound("conversation")
    if end.replaces is not None:
        await message_queries.soft_delete_message(session, end.replaces.id, retired_at)
    ended = await message_queries.finish_reply(
        session,
        end.reply,
        status=end.status,
        content=end.content,
        tool_calls=end.tool_calls,
        meta=end.meta,
    )
    await add_chunks(session, ended.id, end.chunks)
    await run_queries.finish_run(session, end.run)
    return conversation, ended
