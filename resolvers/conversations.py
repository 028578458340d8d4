"""Conversation reads and mutations."""

from __future__ import annotations

import uuid

from core.ids import expect_global_id
from db import conversations as conversation_queries
from db.models import Conversation, ConversationStatus
from resolvers.context import Context
from resolvers.pagination import PageResult, page_result, window_from_args
from services import conversations as conversation_service
from services.validation import SEARCH_MAX, clean_optional_text


async def list_conversations(
    ctx: Context,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    status: ConversationStatus,
    search: str | None,
) -> PageResult[Conversation]:
    user_id = await ctx.user_id()
    spec, scope = conversation_queries.CONVERSATIONS, str(user_id)
    window = window_from_args(ctx.app.cursors, spec, scope, first, after, last, before)
    term = clean_optional_text(search, "search", SEARCH_MAX)
    page = await ctx.read(
        lambda session: conversation_queries.list_conversations(
            session, user_id, status, term, window
        )
    )

    async def count() -> int:
        return await ctx.read(
            lambda session: conversation_queries.count_conversations(session, user_id, status, term)
        )

    return page_result(ctx.app.cursors, spec, scope, page, count)


async def conversation(ctx: Context, conversation_id: str) -> Conversation | None:
    row_id = expect_global_id(conversation_id, "Conversation")
    return await ctx.loaders.conversation_by_id.load(row_id)


async def create_conversation(ctx: Context, title: str | None) -> Conversation:
    user_id = await ctx.user_id()
    async with ctx.writing() as session:
        row = await conversation_service.create_conversation(session, user_id, title)
    await conversation_service.announce_change(ctx.app.broker, user_id)
    return row


async def rename_conversation(ctx: Context, conversation_id: str, title: str) -> Conversation:
    row_id = expect_global_id(conversation_id, "Conversation")
    user_id = await ctx.user_id()
    async with ctx.writing() as session:
        row = await conversation_service.rename_conversation(session, user_id, row_id, title)
    await conversation_service.announce_change(ctx.app.broker, user_id)
    return row


async def set_conversation_status(
    ctx: Context, conversation_id: str, status: ConversationStatus
) -> Conversation:
    row_id = expect_global_id(conversation_id, "Conversation")
    user_id = await ctx.user_id()
    async with ctx.writing() as session:
        row = await conversation_service.set_conversation_status(session, user_id, row_id, status)
    await conversation_service.announce_change(ctx.app.broker, user_id)
    return row


async def delete_conversation(ctx: Context, conversation_id: str) -> uuid.UUID:
    row_id = expect_global_id(conversation_id, "Conversation")
    user_id = await ctx.user_id()
    async with ctx.exclusive() as session:
        await conversation_service.delete_conversation(session, ctx.app.broker, user_id, row_id)
    return row_id
