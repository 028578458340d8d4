"""Keyset (seek) pagination for Relay connections: no OFFSET anywhere.

A list is a filtered `select` plus a sort key whose columns all run the same way; the
page is the rows strictly after (or before) a cursor's key, fetched with one extra row
to know whether more exist.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement

from core.cursors import KeyPart
from core.errors import BadUserInput

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class Window:
    """A validated page request: `limit` rows after `after` or before `before`."""

    limit: int
    backward: bool
    after: tuple[KeyPart, ...] | None = None
    before: tuple[KeyPart, ...] | None = None


def check_page_size(first: int | None, last: int | None) -> tuple[int, bool]:
    """(page size, backward?) from Relay arguments, or `BAD_USER_INPUT`."""
    if first is not None and last is not None:
        raise BadUserInput("pass either first or last, not both", field="first")
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 1 <= value <= MAX_PAGE_SIZE:
            raise BadUserInput(f"{name} must be between 1 and {MAX_PAGE_SIZE}", field=name)
    if last is not None:
        return last, True
    return first if first is not None else DEFAULT_PAGE_SIZE, False


@dataclass(slots=True)
class Page(Generic[T]):
    rows: list[T]
    has_next_page: bool
    has_previous_page: bool


@dataclass(frozen=True, slots=True)
class SortKey:
    columns: tuple[QueryableAttribute[Any], ...]
    descending: bool

    def ordered(self, reverse: bool = False) -> list[ColumnElement[Any]]:
        descending = self.descending != reverse
        return [c.desc() if descending else c.asc() for c in self.columns]

    def beyond(self, key: Sequence[KeyPart], reverse: bool = False) -> ColumnElement[bool]:
        """Rows that come strictly after `key` in this order (before it, if reversed)."""
        descending = self.descending != reverse
        row = tuple_(*self.columns)
        value = tuple_(*key)
        return row < value if descending else row > value


async def fetch_page(
    session: AsyncSession,
    stmt: Select[T],
    sort: SortKey,
    window: Window,
    key_of: Callable[[T], tuple[KeyPart, ...]],
) -> Page[T]:
    """One page in display order. `stmt` holds the filters and selects the rows;
    `key_of` gives a row's sort key."""
    query = stmt
    if window.after is not None:
        query = query.where(sort.beyond(window.after))
    if window.before is not None:
        query = query.where(sort.beyond(window.before, reverse=True))
    query = query.order_by(*sort.ordered(reverse=window.backward)).limit(window.limit + 1)
    rows = list((await session.scalars(query)).all())
    has_more = len(rows) > window.limit
    rows = rows[: window.limit]
    if window.backward:
        rows.reverse()
    # the far side of the cursor: anything at or beyond it in the other direction
    boundary = window.before if window.backward else window.after
    has_other_side = False
    if boundary is not None:
        at_or_behind = ~sort.beyond(boundary, reverse=window.backward)
        has_other_side = bool(await session.scalar(select(stmt.where(at_or_behind).exists())))
    if window.backward:
        return Page(rows, has_next_page=has_other_side, has_previous_page=has_more)
    return Page(rows, has_next_page=has_more, has_previous_page=has_other_side)


def key_of(*attributes: str) -> Callable[[Any], tuple[KeyPart, ...]]:
    return lambda row: tuple(getattr(row, name) for name in attributes)
