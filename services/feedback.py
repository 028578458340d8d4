"""Feedback on replies: a user rates an assistant reply up or down, with a comment."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import BadUserInput, NotFound
from db import feedback as feedback_queries
from db import messages as message_queries
from db.models import Message, MessageRole, Rating, ReplyFeedback
from services.validation import FEEDBACK_COMMENT_MAX, clean_optional_text


async def rate_reply(
    session: AsyncSession,
    user_id: uuid.UUID,
    message_id: uuid.UUID,
    rating: Rating,
    comment: str | None,
) -> tuple[Message, ReplyFeedback]:
    """One rating per user and reply; a second call replaces it (rating and comment).
    Another user's message is `NOT_FOUND`; a USER message is `BAD_USER_INPUT`."""
    cleaned = clean_optional_text(comment, "comment", FEEDBACK_COMMENT_MAX)
    found = await message_queries.get_messages(session, user_id, [message_id])
    if not found:
        raise NotFound("message")
    message = found[0]
    if message.role != MessageRole.ASSISTANT:
        raise BadUserInput("only assistant replies can be rated", field="messageId")
    feedback = await feedback_queries.set_feedback(session, user_id, message.id, rating, cleaned)
    return message, feedback
