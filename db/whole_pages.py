"""Whole pages in one statement, for compiled operations: a list page's rows together
with whatever the selection asks of them — the total count, the far side of the cursor,
each conversation's message count and newest message — or a conversation with a page of
its messages. One round trip, whatever the page size.

The statements are portable (no LATERAL: SQLite has none): a one-row head of scalar
subqueries, outer-joined to the page, so an empty page still answers its counts. Each is
built once per shape (`*Ask`, window direction, which cursors) with bind parameters,
and filters rows exactly as the generic path's list statements do (the same
`listed_filters`, `ListSpec` and `page_of`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    bindparam,
    exists,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.orm import InstrumentedAttribute, aliased

from db import conversations as conversation_queries
from db import driver
from db import messages as message_queries
from db import tasks as task_queries
from db.models import Conversation, ConversationStatus, Message, Task, TaskStatus, is_listed
from db.pagination import (
    ListSpec,
    Window,
    other_side_of,
    page_flags,
    page_of,
    window_values,
)


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """What each conversation row carries along: its message count (as `messageCount`
    counts), and columns of its newest listed message (as `lastMessage` picks it)."""

    count: bool = False
    #: Message attribute names; empty: no newest message asked for
    last: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PageAsk:
    """What a page's selection needs: node columns (attribute names of the list's model,
    the sort key's always among them), the total, and per conversation a summary."""

    columns: tuple[str, ...]
    total: bool = False
    summary: MessageSummary | None = None


@dataclass(slots=True)
class WholePage:
    #: per row: the `PageAsk.columns` values, then the summary's (count, then `last`)
    rows: list[Sequence[Any]]
    total: int | None
    has_next_page: bool
    has_previous_page: bool


@dataclass(slots=True)
class ConversationWithMessages:
    #: the conversation's columns and summary, as a page row; `None`: not the user's
    conversation: Sequence[Any] | None
    messages: WholePage | None


def row_width(ask: PageAsk) -> int:
    summary = ask.summary
    extra = 0 if summary is None else int(summary.count) + len(summary.last)
    return len(ask.columns) + extra


def _summary_columns(summary: MessageSummary | None) -> tuple[list[Any], Any]:
    """Columns (correlated to `Conversation`) and the outer join that brings them."""
    if summary is None:
        return [], None
    columns: list[Any] = []
    listed = (Message.deleted_at.is_(None), is_listed(Message.status))
    if summary.count:
        count = (
            select(func.count())
            .where(
                Message.conversation_id == Conversation.id,
                Message.user_id == bindparam("user_id"),
                *listed,
            )
            .scalar_subquery()
        )
        columns.append(count.label("s_count"))
    join = None
    if summary.last:
        newest = aliased(Message, name="newest")
        newest_id = (
            select(Message.id)
            .where(Message.conversation_id == Conversation.id, *listed)
            .order_by(Message.seq.desc())
            .limit(1)
            .scalar_subquery()
        )
        columns.extend(getattr(newest, name).label(f"s_last_{name}") for name in summary.last)
        join = (newest, newest.id == newest_id)
    return columns, join


def _node_columns(model: Any, names: Sequence[str]) -> list[Any]:
    return [getattr(model, name).label(f"n_{name}") for name in names]


def _page(
    model: Any, ask: PageAsk, filters: list[ColumnElement[bool]], spec: ListSpec, window: Window
) -> Subquery:
    summary_columns, join = _summary_columns(ask.summary)
    stmt = select(*_node_columns(model, ask.columns), *summary_columns).where(*filters)
    if join is not None:
        stmt = stmt.select_from(model).outerjoin(*join)
    return page_of(stmt, spec, window).subquery("page")


def _ordered(page: Subquery, spec: ListSpec, window: Window) -> list[ColumnElement[Any]]:
    descending = spec.descending != window.backward
    columns = [page.c[f"n_{column.key}"] for column in spec.columns]
    return [c.desc() if descending else c.asc() for c in columns]


def _head_columns(
    model: Any, ask: PageAsk, filters: list[ColumnElement[bool]], spec: ListSpec, window: Window
) -> list[Any]:
    """The total (if asked) and whether the far side of a cursor has rows (if one)."""
    head: list[Any] = []
    key: InstrumentedAttribute[Any] = spec.columns[-1]
    if ask.total:
        head.append(select(func.count(key)).where(*filters).scalar_subquery().label("h_total"))
    other_side = other_side_of(select(key).where(*filters), spec, window)
    if other_side is not None:
        head.append(exists(other_side).label("h_other"))
    return head


def _list_statement(
    model: Any, ask: PageAsk, filters: list[ColumnElement[bool]], spec: ListSpec, window: Window
) -> Select[Any]:
    head_columns = _head_columns(model, ask, filters, spec, window) or [
        literal_column("1").label("h_one")
    ]
    head = select(*head_columns).subquery("head")
    page = _page(model, ask, filters, spec, window)
    return (
        select(*head.c, *page.c)
        .select_from(head.outerjoin(page, true()))
        .order_by(*_ordered(page, spec, window))
    )


def _whole_page(
    rows: Sequence[Sequence[Any]], offset: int, ask: PageAsk, window: Window
) -> WholePage:
    """Rows of a statement whose page columns start at `offset` (nulls: no rows)."""
    head = rows[0] if rows else None
    total = int(head[0]) if head is not None and ask.total else None
    has_other = bool(head[int(ask.total)]) if head is not None and window.cursor_behind else False
    width = row_width(ask)
    # the outer join's lone null row: an empty page (every node has its sort key)
    items = [row[offset : offset + width] for row in rows if row[offset] is not None]
    has_more = len(items) > window.limit
    items = items[: window.limit]
    if window.backward:
        items.reverse()
    has_next, has_previous = page_flags(window, has_more, has_other)
    return WholePage(items, total, has_next, has_previous)


#: statements kept, by shape: a client picks the shape (which columns, which cursors),
#: so the least recently used go rather than memory growing with every new one
STATEMENTS_CACHED = 256
STATEMENTS: LRUCache[Hashable, driver.Kept] = LRUCache(STATEMENTS_CACHED)


def _kept(key: Hashable, build: Callable[[], Select[Any]]) -> driver.Kept:
    kept = STATEMENTS.get(key)
    if kept is None:
        kept = STATEMENTS[key] = driver.Kept(build())
    return kept


def _shape(ask: Hashable, variant: Hashable, window: Window) -> tuple[Hashable, ...]:
    return (ask, variant, window.backward, window.after is None, window.before is None)


def _head_width(ask: PageAsk, window: Window) -> int:
    return max(1, int(ask.total) + int(window.cursor_behind))


async def conversation_page(
    read: driver.RowReader,
    ask: PageAsk,
    user_id: uuid.UUID,
    status: ConversationStatus,
    search: str | None,
    window: Window,
) -> WholePage:
    """`conversations(...)`: the page, as `db.conversations.list_conversations` reads it."""
    with_search = bool(search)
    key = ("conversations", _shape(ask, with_search, window))
    kept = _kept(
        key,
        lambda: _list_statement(
            Conversation,
            ask,
            conversation_queries.listed_filters(with_search),
            conversation_queries.CONVERSATIONS,
            window,
        ),
    )
    values = {**conversation_queries.list_params(user_id, status, search), **window_values(window)}
    rows = await read(kept, values)
    return _whole_page(rows, _head_width(ask, window), ask, window)


async def task_page(
    read: driver.RowReader,
    ask: PageAsk,
    user_id: uuid.UUID,
    status: TaskStatus | None,
    window: Window,
) -> WholePage:
    """`tasks(...)`: the page, as `db.tasks.list_tasks` reads it."""
    with_status = status is not None
    key = ("tasks", _shape(ask, with_status, window))
    kept = _kept(
        key,
        lambda: _list_statement(
            Task, ask, task_queries.listed_filters(with_status), task_queries.TASKS, window
        ),
    )
    values = {**task_queries.list_params(user_id, status), **window_values(window)}
    rows = await read(kept, values)
    return _whole_page(rows, _head_width(ask, window), ask, window)


def _conversation_statement(
    conversation: PageAsk, messages: PageAsk | None, window: Window | None
) -> Select[Any]:
    summary_columns, join = _summary_columns(conversation.summary)
    lead = select(
        literal_column("1").label("l_one"), *_node_columns(Conversation, conversation.columns)
    )
    lead = lead.add_columns(*summary_columns).where(
        Conversation.id == bindparam("conversation_id"),
        Conversation.user_id == bindparam("user_id"),
        Conversation.deleted_at.is_(None),
    )
    if join is not None:
        lead = lead.select_from(Conversation).outerjoin(*join)
    one = select(literal_column("1").label("one")).subquery("one")
    found = lead.subquery("found")
    columns: list[Any] = list(found.c)
    from_ = one.outerjoin(found, true())
    order: list[ColumnElement[Any]] = []
    if messages is not None and window is not None:
        filters = message_queries.in_conversation_filters()
        spec = message_queries.MESSAGES
        head = _head_columns(Message, messages, filters, spec, window)
        page = _page(Message, messages, filters, spec, window)
        columns += [*head, *page.c]
        from_ = from_.outerjoin(page, true())
        order = _ordered(page, spec, window)
    return select(*columns).select_from(from_).order_by(*order)


async def conversation_with_messages(
    read: driver.RowReader,
    conversation: PageAsk,
    messages: PageAsk | None,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    window: Window | None,
) -> ConversationWithMessages:
    """`conversation(id)` and (if asked) a page of its `messages`, as the loader and
    `db.messages.list_messages` read them."""
    key = ("conversation", conversation, messages, window and _shape(None, None, window))
    kept = _kept(key, lambda: _conversation_statement(conversation, messages, window))
    values: dict[str, Any] = {"user_id": user_id, "conversation_id": conversation_id}
    if window is not None:
        values.update(window_values(window))
    rows = await read(kept, values)
    width = 1 + row_width(conversation)
    if not rows or rows[0][0] is None:
        return ConversationWithMessages(None, None)
    found = rows[0][1:width]
    if messages is None or window is None:
        return ConversationWithMessages(found, None)
    head = int(messages.total) + int(window.cursor_behind)
    page = _whole_page([row[width:] for row in rows], head, messages, window)
    return ConversationWithMessages(found, page)
