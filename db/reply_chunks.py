"""Queries on reply chunks: a reply's stream as it is written (see models.ReplyChunk)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from db import driver
from db.models import ReplyChunk

_CHUNKS = driver.Loader(ReplyChunk)
_ADD_CHUNK = _CHUNKS.insert()
_CHUNK_KEYS = ("sequence", "text_offset", "text", "tool_call")


async def add_chunks(
    session: AsyncSession, message_id: uuid.UUID, chunks: Sequence[dict[str, Any]]
) -> None:
    """One statement for a batch: `chunks` are dicts of sequence, text_offset, text and
    tool_call."""
    await driver.execute_many(
        session,
        _ADD_CHUNK,
        [
            {"b_message_id": message_id, **{f"b_{key}": chunk[key] for key in _CHUNK_KEYS}}
            for chunk in chunks
        ],
    )


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
