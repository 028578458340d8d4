"""Keyset (seek) pagination: no OFFSET anywhere.

Each list is described once by a `ListSpec`: the sort columns (all running the same
way), which fixes the cursor's key types, and the page bounds. The page is the rows
strictly after (or before) a cursor's key, fetched with one extra row to know whether
more exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import BindParameter, Integer, Select, bindparam, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from core.cursors import KeyPart, KeyType

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PageBounds:
    """How many rows a page has when the client does not say, and at most."""

    default: int = 20
    maximum: int = 100


#: every list's bounds today; the query-cost estimate assumes them too
PAGE_BOUNDS = PageBounds()

_KEY_TYPES: dict[type, KeyType] = {datetime: "datetime", uuid.UUID: "uuid", int: "int"}


def _key_type(column: InstrumentedAttribute[Any]) -> KeyType:
    """A cursor key's type, from its column's (through a TypeDecorator)."""
    column_type = column.type
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    return _KEY_TYPES[column_type.python_type]


@dataclass(frozen=True, slots=True)
class ListSpec:
    """One list: the kind its cursors name, its sort columns and its page bounds."""

    kind: str
    columns: tuple[InstrumentedAttribute[Any], ...]
    descending: bool
    key_types: tuple[KeyType, ...]
    bounds: PageBounds = PAGE_BOUNDS

    @classmethod
    def of(
        cls, kind: str, *columns: InstrumentedAttribute[Any], descending: bool = False
    ) -> ListSpec:
        return cls(kind, columns, descending, tuple(_key_type(column) for column in columns))

    def key_of(self, row: Any) -> tuple[KeyPart, ...]:
        return tuple(getattr(row, column.key) for column in self.columns)

    def ordered(self, reverse: bool = False) -> list[ColumnElement[Any]]:
        descending = self.descending != reverse
        return [c.desc() if descending else c.asc() for c in self.columns]

    def beyond(
        self, key: Sequence[KeyPart] | Sequence[BindParameter[Any]], reverse: bool = False
    ) -> ColumnElement[bool]:
        """Rows that come strictly after `key` in this order (before it, if reversed)."""
        descending = self.descending != reverse
        row = tuple_(*self.columns)
        value = tuple_(*key)
        return row < value if descending else row > value


@dataclass(frozen=True, slots=True)
class Window:
    """A validated page request: `limit` rows after `after` or before `before`."""

    limit: int
    backward: bool
    after: tuple[KeyPart, ...] | None = None
    before: tuple[KeyPart, ...] | None = None

    @property
    def cursor_behind(self) -> bool:
        """A cursor on the side the page moves away from (`after` of a forward page):
        whether rows lie beyond it is the page's other flag."""
        return (self.before if self.backward else self.after) is not None


@dataclass(slots=True)
class Page(Generic[T]):
    rows: list[T]
    has_next_page: bool
    has_previous_page: bool


#: composed page statements, by (list shape, direction, which cursors): built once each,
#: so a request neither constructs a statement nor computes its cache key anew
_PAGE_STATEMENTS: dict[tuple[Any, ...], tuple[Select[Any], Select[Any] | None]] = {}


def _key_params(prefix: str, spec: ListSpec) -> list[BindParameter[Any]]:
    return [
        bindparam(f"{prefix}_{position}", type_=column.type)
        for position, column in enumerate(spec.columns)
    ]


def page_of(stmt: Select[T], spec: ListSpec, window: Window) -> Select[T]:
    """`stmt` cut to the window's page (one row more than asked), in fetch order: bind
    parameters `after_N`, `before_N` and `page_limit` (`window_values`)."""
    if window.after is not None:
        stmt = stmt.where(spec.beyond(_key_params("after", spec)))
    if window.before is not None:
        stmt = stmt.where(spec.beyond(_key_params("before", spec), reverse=True))
    return stmt.order_by(*spec.ordered(reverse=window.backward)).limit(
        bindparam("page_limit", type_=Integer)
    )


def other_side_of(stmt: Select[Any], spec: ListSpec, window: Window) -> Select[Any] | None:
    """Whether anything lies at or beyond the window's cursor in the other direction
    (`hasPreviousPage` of a forward page), or `None` when no cursor there."""
    if not window.cursor_behind:
        return None
    prefix = "before" if window.backward else "after"
    at_or_behind = ~spec.beyond(_key_params(prefix, spec), reverse=window.backward)
    return stmt.where(at_or_behind)


def window_values(window: Window) -> dict[str, Any]:
    """The bind parameter values `page_of` and `other_side_of` take."""
    values: dict[str, Any] = {"page_limit": window.limit + 1}
    for prefix, key in (("after", window.after), ("before", window.before)):
        if key is not None:
            values.update({f"{prefix}_{position}": part for position, part in enumerate(key)})
    return values


def page_flags(window: Window, has_more: bool, has_other_side: bool) -> tuple[bool, bool]:
    """(`hasNextPage`, `hasPreviousPage`) of a page in this window."""
    if window.backward:
        return has_other_side, has_more
    return has_more, has_other_side


def _page_statements(
    shape: Hashable, base: Callable[[], Select[T]], spec: ListSpec, window: Window
) -> tuple[Select[T], Select[Any] | None]:
    key = (shape, window.backward, window.after is None, window.before is None)
    statements = _PAGE_STATEMENTS.get(key)
    if statements is None:
        stmt = base()
        other_side = other_side_of(stmt, spec, window)
        statements = _PAGE_STATEMENTS[key] = (
            page_of(stmt, spec, window),
            None if other_side is None else select(other_side.exists()),
        )
    return statements


async def fetch_page(
    session: AsyncSession,
    shape: Hashable,
    base: Callable[[], Select[T]],
    params: dict[str, Any],
    spec: ListSpec,
    window: Window,
) -> Page[T]:
    """One page in display order. `base()` builds the list's filtered select with bind
    parameters (their values in `params`); it is called once per `shape`, the name of
    that select's form (e.g. with or without a search term)."""
    query, other_side = _page_statements(shape, base, spec, window)
    values = {**params, **window_values(window)}
    rows = list((await session.scalars(query, values)).all())
    has_more = len(rows) > window.limit
    rows = rows[: window.limit]
    if window.backward:
        rows.reverse()
    has_other_side = False
    if other_side is not None:
        has_other_side = bool(await session.scalar(other_side, values))
    has_next_page, has_previous_page = page_flags(window, has_more, has_other_side)
    return Page(rows, has_next_page=has_next_page, has_previous_page=has_previous_page)
