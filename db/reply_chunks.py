"""Queries on reply chunks: a reply's stream as it is written (see models.ReplyChunk)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, Text, Uuid, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from core import jsontext
from db import driver
from db.models import ReplyChunk

#: a chunk as the journal hands it over: sequence, text_offset, text, tool_call
ChunkRow = tuple[int, int, str, dict[str, Any] | None]

#: a whole batch in one statement: its columns as arrays, unnested (a tool call as JSON
#: text, null for a piece of text); PostgreSQL only (the journal's database)
_ADD_CHUNKS = driver.Kept(
    text(
        "INSERT INTO reply_chunks (message_id, sequence, text_offset, text, tool_call)"
        " SELECT :message_id, batch.sequence, batch.text_offset, batch.text,"
        " CAST(batch.tool_call AS JSONB)"
        " FROM unnest(:sequences, :offsets, :texts, :tool_calls)"
        " AS batch(sequence, text_offset, text, tool_call)"
    ).bindparams(
        bindparam("message_id", type_=Uuid()),
        bindparam("sequences", type_=ARRAY(Integer)),
        bindparam("offsets", type_=ARRAY(Integer)),
        bindparam("texts", type_=ARRAY(Text)),
        bindparam("tool_calls", type_=ARRAY(Text)),
    )
)


async def add_chunks(
    session: AsyncSession, message_id: uuid.UUID, chunks: Sequence[ChunkRow]
) -> None:
    """One statement for a batch of (sequence, text_offset, text, tool_call) rows: one
    execution on the server, where a pipelined INSERT per row cost one each."""
    if not chunks:
        return
    sequences, offsets, texts, tool_calls = chunk_columns(chunks)
    await driver.execute(
        session,
        _ADD_CHUNKS,
        {
            "message_id": message_id,
            "sequences": sequences,
            "offsets": offsets,
            "texts": texts,
            "tool_calls": tool_calls,
        },
    )


def chunk_columns(
    chunks: Sequence[ChunkRow],
) -> tuple[list[int], list[int], list[str], list[str | None]]:
    """A batch as the arrays a statement unnests: sequences, offsets, texts, and tool
    calls as JSON text (null for a piece of text)."""
    sequences = [chunk[0] for chunk in chunks]
    offsets = [chunk[1] for chunk in chunks]
    texts = [chunk[2] for chunk in chunks]
    tool_calls = [None if chunk[3] is None else jsontext.dumps(chunk[3]) for chunk in chunks]
    return sequences, offsets, texts, tool_calls


async def notify(session: AsyncSession, channel: str, payload: str) -> None:
    """Delivered to listeners when the transaction commits (PostgreSQL)."""
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
    )


async def chunks_after(
    session: AsyncSession, message_id: uuid.UUID, sequence: int, limit: int
) -> list[ReplyChunk]:
    rows = await session.scalars(
        select(ReplyChunk)
        .where(ReplyChunk.message_id == message_id, ReplyChunk.sequence > sequence)
        .order_by(ReplyChunk.sequence)
        .limit(limit)
    )
    return list(rows)
