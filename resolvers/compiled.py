"""Reads of compiled operations: the same argument rules, scoping and cursors as the
generic resolvers (`resolvers.conversations`, `resolvers.messages`, `resolvers.tasks`),
each page in one statement (`db.whole_pages`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.cursors import CursorCodec
from core.ids import expect_global_id
from db import conversations as conversation_queries
from db import messages as message_queries
from db import tasks as task_queries
from db import whole_pages
from db.models import ConversationStatus, TaskStatus
from db.pagination import ListSpec
from db.whole_pages import PageAsk, WholePage
from resolvers.context import Context
from resolvers.pagination import window_from_args
from services.validation import SEARCH_MAX, clean_optional_text


@dataclass(slots=True)
class CompiledPage:
    rows: list[Sequence[Any]]
    #: one per row, when the selection shows cursors
    cursors: list[str] | None
    total: int | None
    has_next_page: bool
    has_previous_page: bool


def _compiled(
    codec: CursorCodec, spec: ListSpec, scope: str, ask: PageAsk, page: WholePage, cursors: bool
) -> CompiledPage:
    encoded: list[str] | None = None
    if cursors:
        positions = [ask.columns.index(column.key) for column in spec.columns]
        kind, encode = spec.kind, codec.encode
        encoded = [
            encode(kind, scope, [row[position] for position in positions]) for row in page.rows
        ]
    return CompiledPage(page.rows, encoded, page.total, page.has_next_page, page.has_previous_page)


async def conversations_page(
    ctx: Context,
    ask: PageAsk,
    cursors: bool,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    status: ConversationStatus | None,
    search: str | None,
) -> CompiledPage:
    user_id = await ctx.user_id()
    spec, scope = conversation_queries.CONVERSATIONS, str(user_id)
    window = window_from_args(ctx.app.cursors, spec, scope, first, after, last, before)
    term = clean_optional_text(search, "search", SEARCH_MAX)
    listed = status or ConversationStatus.ACTIVE
    page = await whole_pages.conversation_page(ctx.rows, ask, user_id, listed, term, window)
    return _compiled(ctx.app.cursors, spec, scope, ask, page, cursors)


async def tasks_page(
    ctx: Context,
    ask: PageAsk,
    cursors: bool,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    status: TaskStatus | None,
) -> CompiledPage:
    user_id = await ctx.user_id()
    spec, scope = task_queries.TASKS, str(user_id)
    window = window_from_args(ctx.app.cursors, spec, scope, first, after, last, before)
    page = await whole_pages.task_page(ctx.rows, ask, user_id, status, window)
    return _compiled(ctx.app.cursors, spec, scope, ask, page, cursors)


async def conversation(
    ctx: Context,
    ask: PageAsk,
    messages: PageAsk | None,
    cursors: bool,
    conversation_id: str,
    window_args: dict[str, Any] | None,
) -> tuple[Sequence[Any], CompiledPage | None] | None:
    """`conversation(id)`, and a page of its `messages` when asked (`window_args`)."""
    row_id = expect_global_id(conversation_id, "Conversation")
    user_id = await ctx.user_id()
    spec, scope = message_queries.MESSAGES, str(row_id)
    window = None
    if window_args is not None:
        window = window_from_args(ctx.app.cursors, spec, scope, **window_args)
    found = await whole_pages.conversation_with_messages(
        ctx.rows, ask, messages, user_id, row_id, window
    )
    if found.conversation is None:
        return None
    page = None
    if messages is not None and found.messages is not None:
        page = _compiled(ctx.app.cursors, spec, scope, messages, found.messages, cursors)
    return found.conversation, page
