"""The statements of the data lifecycle (archive, purge, export, erase), one batch each.

Every function touches at most `limit` rows of its table, so a caller that runs each
batch in its own transaction never holds a lock for long; a batch that finds nothing
returns 0, and the caller stops.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    AgentRun,
    Base,
    Conversation,
    ConversationStatus,
    Message,
    ReplyFeedback,
    Task,
    TaskEffect,
    User,
)

Row = TypeVar("Row", bound=Base)


def _count(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def _inactive(cutoff: datetime) -> list[ColumnElement[bool]]:
    return [
        Conversation.status == ConversationStatus.ACTIVE,
        Conversation.deleted_at.is_(None),
        Conversation.updated_at < cutoff,
    ]


async def archive_inactive_batch(
    session: AsyncSession, cutoff: datetime, limit: int
) -> list[uuid.UUID]:
    """Archives up to `limit` live, active conversations untouched since `cutoff`; the
    ids it archived. `updated_at` stays: archiving by age is not activity. The UPDATE
    re-checks the condition, so a conversation that got a message meanwhile stays."""
    ids = list(
        await session.scalars(
            select(Conversation.id).where(*_inactive(cutoff)).order_by(Conversation.id).limit(limit)
        )
    )
    if not ids:
        return []
    archived = await session.scalars(
        update(Conversation)
        .where(Conversation.id.in_(ids), *_inactive(cutoff))
        .values(status=ConversationStatus.ARCHIVED)
        .returning(Conversation.id)
    )
    return list(archived)


async def purge_deleted_messages_batch(
    session: AsyncSession, cutoff: datetime, limit: int
) -> tuple[int, int]:
    """Hard-deletes up to `limit` messages soft-deleted before `cutoff`, and the runs of
    the questions among them: (messages, runs). Replies pointing at a purged question
    lose the pointer (the foreign key sets it null)."""
    ids = list(
        await session.scalars(
            select(Message.id)
            .where(Message.deleted_at.is_not(None), Message.deleted_at < cutoff)
            .order_by(Message.id)
            .limit(limit)
        )
    )
    if not ids:
        return 0, 0
    runs = _count(await session.execute(delete(AgentRun).where(AgentRun.user_message_id.in_(ids))))
    messages = _count(await session.execute(delete(Message).where(Message.id.in_(ids))))
    return messages, runs


async def purge_deleted_conversations_batch(
    session: AsyncSession, cutoff: datetime, limit: int
) -> tuple[int, int, int]:
    """Hard-deletes up to `limit` conversations soft-deleted before `cutoff`, with what
    is left of their messages and runs: (conversations, messages, runs)."""
    ids = list(
        await session.scalars(
            select(Conversation.id)
            .where(Conversation.deleted_at.is_not(None), Conversation.deleted_at < cutoff)
            .order_by(Conversation.id)
            .limit(limit)
        )
    )
    if not ids:
        return 0, 0, 0
    runs = _count(await session.execute(delete(AgentRun).where(AgentRun.conversation_id.in_(ids))))
    messages = _count(
        await session.execute(delete(Message).where(Message.conversation_id.in_(ids)))
    )
    conversations = _count(
        await session.execute(delete(Conversation).where(Conversation.id.in_(ids)))
    )
    return conversations, messages, runs


async def delete_owned_batch(
    session: AsyncSession, model: type[Row], user_id: uuid.UUID, limit: int
) -> list[uuid.UUID]:
    """Hard-deletes up to `limit` rows of `model` (a table with `user_id`) owned by the
    user; the ids it deleted."""
    owner: Any = model.user_id  # type: ignore[attr-defined]
    key: Any = model.id  # type: ignore[attr-defined]
    ids = list(
        await session.scalars(select(key).where(owner == user_id).order_by(key).limit(limit))
    )
    if not ids:
        return []
    await session.execute(delete(model).where(key.in_(ids)))
    return ids


async def delete_user(session: AsyncSession, user_id: uuid.UUID) -> int:
    """The user row; anything written for the user since the batches ran goes with it
    (every owned table cascades)."""
    return _count(await session.execute(delete(User).where(User.id == user_id)))


async def owned_page(
    session: AsyncSession,
    model: type[Row],
    user_id: uuid.UUID,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[Row]:
    """One page of the user's rows of `model`, soft-deleted ones included, by id."""
    owner: Any = model.user_id  # type: ignore[attr-defined]
    key: Any = model.id  # type: ignore[attr-defined]
    stmt = select(model).where(owner == user_id)
    if after is not None:
        stmt = stmt.where(key > after)
    return list(await session.scalars(stmt.order_by(key).limit(limit)))


OWNED_TABLES: tuple[type[Base], ...] = (
    TaskEffect,
    ReplyFeedback,
    AgentRun,
    Message,
    Conversation,
    Task,
)
"""The tables a user owns rows in, in an order that deletes children first."""
