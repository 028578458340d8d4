"""Queries on reply feedback: one rating per user and reply."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Rating, ReplyFeedback
from db.types import utcnow


async def set_feedback(
    session: AsyncSession,
    user_id: uuid.UUID,
    message_id: uuid.UUID,
    rating: Rating,
    comment: str | None,
) -> ReplyFeedback:
    """Inserts the user's rating of the reply, or replaces it: one statement, so two
    concurrent ratings end as one row (the later one)."""
    now = utcnow()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(ReplyFeedback).values(
        id=uuid.uuid4(),
        user_id=user_id,
        message_id=message_id,
        rating=rating,
        comment=comment,
        created_at=now,
        updated_at=now,
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=[ReplyFeedback.message_id, ReplyFeedback.user_id],
        set_={"rating": rating, "comment": comment, "updated_at": now},
    ).returning(ReplyFeedback)
    rows = await session.scalars(upsert, execution_options={"populate_existing": True})
    row: ReplyFeedback = rows.one()
    return row


async def feedback_of(
    session: AsyncSession, user_id: uuid.UUID, message_ids: Sequence[uuid.UUID]
) -> list[ReplyFeedback]:
    return list(
        await session.scalars(
            select(ReplyFeedback).where(
                ReplyFeedback.message_id.in_(message_ids), ReplyFeedback.user_id == user_id
            )
        )
    )
