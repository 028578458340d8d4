"""Relay arguments in, a page with signed cursors out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from core.cursors import CursorCodec, KeyPart, KeyType
from db.pagination import Page, Window, check_page_size

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CursorSpec:
    """Which list a cursor belongs to: its kind, its scope and its key's types."""

    kind: str
    scope: str
    types: tuple[KeyType, ...]

    def decode(self, codec: CursorCodec, cursor: str) -> tuple[KeyPart, ...]:
        """The keyset position in a cursor of this list; `BAD_USER_INPUT` otherwise."""
        return codec.decode(cursor, self.kind, self.scope, self.types)


@dataclass(slots=True)
class PageResult(Generic[T]):
    rows: list[T]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool
    count: Callable[[], Awaitable[int]]


def window_from_args(
    codec: CursorCodec,
    spec: CursorSpec,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Window:
    limit, backward = check_page_size(first, last)
    return Window(
        limit=limit,
        backward=backward,
        after=None if after is None else spec.decode(codec, after),
        before=None if before is None else spec.decode(codec, before),
    )


def page_result(
    codec: CursorCodec,
    spec: CursorSpec,
    page: Page[T],
    key_of: Callable[[T], Sequence[KeyPart]],
    count: Callable[[], Awaitable[int]],
) -> PageResult[T]:
    return PageResult(
        rows=page.rows,
        cursors=[codec.encode(spec.kind, spec.scope, key_of(row)) for row in page.rows],
        has_next_page=page.has_next_page,
        has_previous_page=page.has_previous_page,
        count=count,
    )
