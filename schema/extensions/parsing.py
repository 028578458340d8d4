"""Parsed documents, cached."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from functools import lru_cache

from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import SchemaExtension


@lru_cache(maxsize=512)
def _parse(query: str, max_tokens: int | None) -> DocumentNode:
    return parse(query, max_tokens=max_tokens)


class CachedParsing(SchemaExtension):
    """Caches parsed documents. Unlike strawberry's ParserCache it does not raise from
    its hook: a document that fails to parse is left to strawberry, which reports the
    error without skipping the other extensions' `on_operation` (ErrorCodes)."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None:
            with suppress(GraphQLError):
                context.graphql_document = _parse(
                    context.query, context.parse_options.get("max_tokens")
                )
        yield
