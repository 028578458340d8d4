"""Conversation use cases."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from db import conversations as conversation_queries
from db.models import Conversation, ConversationStatus
from db.transactions import write_transaction
from db.types import utcnow
from live.broker import Announcement, Broker, messages_changed
from services.validation import CONVERSATION_TITLE_MAX, clean_optional_text, clean_text

DEFAULT_TITLE = "New conversation"


def _title_from_message(content: str) -> str:
    """A conversation started by a message is titled by its first line, shortened."""
    first_line = content.strip().splitlines()[0].strip() if content.strip() else ""
    if len(first_line) <= 60:
        return first_line or DEFAULT_TITLE
    return first_line[:57].rstrip() + "…"


async def get_conversation(
    session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation | None:
    return await conversation_queries.get_conversation(session, user_id, conversation_id)


async def require_conversation(
    session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation:
    conversation = await conversation_queries.get_conversation(session, user_id, conversation_id)
    if conversation is None:
        raise NotFound("conversation")
    return conversation


async def create_conversation(
    session: AsyncSession, user_id: uuid.UUID, title: str | None
) -> Conversation:
    cleaned = clean_optional_text(title, "title", CONVERSATION_TITLE_MAX)
    conversation = await conversation_queries.add_conversation(
        session, user_id, cleaned or DEFAULT_TITLE
    )
    await conversation_queries.record_change(session, user_id, conversation.id)
    return conversation


async def start_conversation(
    session: AsyncSession, user_id: uuid.UUID, first_message: str, *, conversation_id: uuid.UUID
) -> Conversation:
    """A conversation opened by its first message, titled by it (its change is recorded
    with the message)."""
    return await conversation_queries.add_conversation(
        session, user_id, _title_from_message(first_message), conversation_id=conversation_id
    )


async def rename_conversation(
    session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID, title: str
) -> Conversation:
    cleaned = clean_text(title, "title", CONVERSATION_TITLE_MAX)
    conversation = await require_conversation(session, user_id, conversation_id)
    await conversation_queries.record_change(session, user_id, conversation.id)
    conversation.title = cleaned
    conversation.updated_at = utcnow()
    await session.flush()
    return conversation


async def set_conversation_status(
    session: AsyncSession,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    status: ConversationStatus,
) -> Conversation:
    conversation = await require_conversation(session, user_id, conversation_id)
    if conversation.status != status:
        await conversation_queries.record_change(session, user_id, conversation.id)
        conversation.status = status
        conversation.updated_at = utcnow()
        await session.flush()
    return conversation


async def delete_conversation(
    session: AsyncSession, broker: Broker, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> None:
    """Its own unit of work: subscribers of the conversation are told after the commit,
    look again, find it gone and complete."""
    async with write_transaction(session):
        conversation = await require_conversation(session, user_id, conversation_id)
        await conversation_queries.record_change(session, user_id, conversation.id)
        await conversation_queries.soft_delete_conversation(session, conversation)
    await broker.publish(conversation_id)
    await broker.publish(user_id)


def changed(conversation_id: uuid.UUID, user_id: uuid.UUID) -> list[Announcement]:
    """What a committed change of a conversation announces: to its subscribers
    (`messageAdded`) and to the user's `conversationEvents` (on every instance)."""
    return [messages_changed(conversation_id), messages_changed(user_id)]


async def announce_change(broker: Broker, user_id: uuid.UUID) -> None:
    """After a commit that recorded a change: the user's `conversationEvents` look again
    (on every instance; the broker's channels are keyed by id, a user's id included)."""
    await broker.publish(user_id)
