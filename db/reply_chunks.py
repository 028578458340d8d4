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

#: one entry of a reply's stream: sequence, offset, text, tool call (None: text)
Entry = tuple[int, int, str, dict[str, Any] | None]
#: a row as it is stored (`pack`): last sequence, first offset, text, tool call, and the
#: lengths of the pieces of text it holds (None: the row is one entry)
ChunkRow = tuple[int, int, str, dict[str, Any] | None, list[int] | None]

#: a whole batch in one statement: its columns as arrays, unnested (a tool call and the
#: pieces as JSON text, null where there are none); PostgreSQL only (the journal's
#: database)
_ADD_CHUNKS = driver.Kept(
    text(
        "INSERT INTO reply_chunks (message_id, sequence, text_offset, text, tool_call, pieces)"
        " SELECT :message_id, batch.sequence, batch.text_offset, batch.text,"
        " CAST(batch.tool_call AS JSONB), CAST(batch.pieces AS JSONB)"
        " FROM unnest(:sequences, :offsets, :texts, :tool_calls, :pieces)"
        " AS batch(sequence, text_offset, text, tool_call, pieces)"
    ).bindparams(
        bindparam("message_id", type_=Uuid()),
        bindparam("sequences", type_=ARRAY(Integer)),
        bindparam("offsets", type_=ARRAY(Integer)),
        bindparam("texts", type_=ARRAY(Text)),
        bindparam("tool_calls", type_=ARRAY(Text)),
        bindparam("pieces", type_=ARRAY(Text)),
    )
)


def pack(entries: Sequence[Entry]) -> list[ChunkRow]:
    """Entries (in order) as rows: each run of consecutive pieces of text one row, each
    tool call a row of its own."""
    rows: list[ChunkRow] = []
    run: list[Entry] = []

    def end_run() -> None:
        if len(run) == 1:
            sequence, offset, piece, _ = run[0]
            rows.append((sequence, offset, piece, None, None))
        elif run:
            pieces = [entry[2] for entry in run]
            rows.append((run[-1][0], run[0][1], "".join(pieces), None, [len(p) for p in pieces]))
        run.clear()

    for entry in entries:
        sequence, offset, piece, tool_call = entry
        if tool_call is not None:
            end_run()
            rows.append((sequence, offset, piece, tool_call, None))
            continue
        if run:
            last_sequence, last_offset, last_piece, _ = run[-1]
            if sequence != last_sequence + 1 or offset != last_offset + len(last_piece):
                end_run()
        run.append(entry)
    end_run()
    return rows


def unpack(rows: Sequence[ReplyChunk], after: int) -> list[Entry]:
    """The entries the rows hold (in order), those numbered after `after`."""
    entries: list[Entry] = []
    for row in rows:
        if row.pieces is None:
            if row.sequence > after:
                entries.append((row.sequence, row.text_offset, row.text, row.tool_call))
            continue
        sequence = row.sequence - len(row.pieces) + 1
        start = 0
        for length in row.pieces:
            if sequence > after:
                piece = row.text[start : start + length]
                entries.append((sequence, row.text_offset + start, piece, None))
            sequence += 1
            start += length
    return entries


async def add_chunks(
    session: AsyncSession, message_id: uuid.UUID, chunks: Sequence[ChunkRow]
) -> None:
    """One statement for a batch of (sequence, text_offset, text, tool_call) rows: one
    execution on the server, where a pipelined INSERT per row cost one each."""
    if not chunks:
        return
    sequences, offsets, texts, tool_calls, pieces = chunk_columns(chunks)
    await driver.execute(
        session,
        _ADD_CHUNKS,
        {
            "message_id": message_id,
            "sequences": sequences,
            "offsets": offsets,
            "texts": texts,
            "tool_calls": tool_calls,
            "pieces": pieces,
        },
    )


def chunk_columns(
    chunks: Sequence[ChunkRow],
) -> tuple[list[int], list[int], list[str], list[str | None], list[str | None]]:
    """A batch as the arrays a statement unnests: sequences, offsets, texts, and tool
    calls and pieces as JSON text (null where there are none)."""
    sequences = [chunk[0] for chunk in chunks]
    offsets = [chunk[1] for chunk in chunks]
    texts = [chunk[2] for chunk in chunks]
    tool_calls = [None if chunk[3] is None else jsontext.dumps(chunk[3]) for chunk in chunks]
    pieces = [None if chunk[4] is None else jsontext.dumps(chunk[4]) for chunk in chunks]
    return sequences, offsets, texts, tool_calls, pieces


async def notify(session: AsyncSession, channel: str, payload: str) -> None:
    """Delivered to listeners when the transaction commits (PostgreSQL)."""
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
    )


async def chunks_after(
    session: AsyncSession, message_id: uuid.UUID, sequence: int, limit: int
) -> list[ReplyChunk]:
    """Rows holding entries after `sequence` (a row's `sequence` is its last entry's):
    `unpack` gives those entries."""
    rows = await session.scalars(
        select(ReplyChunk)
        .where(ReplyChunk.message_id == message_id, ReplyChunk.sequence > sequence)
        .order_by(ReplyChunk.sequence)
        .limit(limit)
    )
    return list(rows)
