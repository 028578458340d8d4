"""Message reads."""

from __future__ import annotations

import uuid

from db import messages as message_queries
from db.models import Conversation, Message
from resolvers.context import Context
from resolvers.pagination import PageResult, page_result, window_from_args


async def list_messages(
    ctx: Context,
    conversation_id: uuid.UUID,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> PageResult[Message]:
    user_id = await ctx.user_id()
    spec, scope = message_queries.MESSAGES, str(conversation_id)
    window = window_from_args(ctx.app.cursors, spec, scope, first, after, last, before)
    page = await ctx.read(
        lambda session: message_queries.list_messages(session, user_id, conversation_id, window)
    )

    async def count() -> int:
        return await ctx.loaders.message_count_by_conversation.load(conversation_id)

    return page_result(ctx.app.cursors, spec, scope, page, count)


async def message_count(ctx: Context, conversation_id: uuid.UUID) -> int:
    return await ctx.loaders.message_count_by_conversation.load(conversation_id)


async def last_message(ctx: Context, conversation_id: uuid.UUID) -> Message | None:
    return await ctx.loaders.last_message_by_conversation.load(conversation_id)


async def active_reply(ctx: Context, conversation_id: uuid.UUID) -> Message | None:
    return await ctx.loaders.active_reply_by_conversation.load(conversation_id)


async def conversation_of(ctx: Context, message: Message) -> Conversation:
    conversation = await ctx.loaders.conversation_by_id.load(message.conversation_id)
    # a live message always has a live conversation: deleting one deletes the other
    assert conversation is not None
    return conversation
