"""Relay connection arguments in, a page with signed cursors out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from core.cursors import CursorCodec, KeyPart
from core.errors import BadUserInput
from db.pagination import ListSpec, Page, Window

T = TypeVar("T")


@dataclass(slots=True)
class PageResult(Generic[T]):
    rows: list[T]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool
    count: Callable[[], Awaitable[int]]


def decode_cursor(
    codec: CursorCodec, spec: ListSpec, scope: str, cursor: str
) -> tuple[KeyPart, ...]:
    """The keyset position in a cursor of this list (in this scope: the user, or the
    conversation of a message page); `BAD_USER_INPUT` otherwise."""
    return codec.decode(cursor, spec.kind, scope, spec.key_types)


def window_from_args(
    codec: CursorCodec,
    spec: ListSpec,
    scope: str,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Window:
    """Relay's rules: `first` or `last`, not both, each within the list's bounds."""
    if first is not None and last is not None:
        raise BadUserInput("pass either first or last, not both", field="first")
    maximum = spec.bounds.maximum
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 1 <= value <= maximum:
            raise BadUserInput(f"{name} must be between 1 and {maximum}", field=name)
    return Window(
        limit=last if last is not None else first if first is not None else spec.bounds.default,
        backward=last is not None,
        after=None if after is None else decode_cursor(codec, spec, scope, after),
        before=None if before is None else decode_cursor(codec, spec, scope, before),
    )


def page_result(
    codec: CursorCodec,
    spec: ListSpec,
    scope: str,
    page: Page[T],
    count: Callable[[], Awaitable[int]],
) -> PageResult[T]:
    return PageResult(
        rows=page.rows,
        cursors=[codec.encode(spec.kind, scope, spec.key_of(row)) for row in page.rows],
        has_next_page=page.has_next_page,
        has_previous_page=page.has_previous_page,
        count=count,
    )
