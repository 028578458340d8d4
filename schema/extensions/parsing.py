"""Parsed documents, cached when they are small."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from functools import lru_cache

from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import SchemaExtension

#: longer documents are parsed (and validated) every time instead of kept: a client
#: could otherwise fill memory with large one-off documents (padded with comments)
MAX_CACHED_DOCUMENT_CHARS = 16 * 1024


@lru_cache(maxsize=512)
def _parse(query: str, max_tokens: int | None) -> DocumentNode:
    return parse(query, max_tokens=max_tokens)


def is_cacheable(query: str | None) -> bool:
    return query is not None and len(query) <= MAX_CACHED_DOCUMENT_CHARS


class CachedParsing(SchemaExtension):
    """Caches parsed documents. Unlike strawberry's ParserCache it does not raise from
    its hook: a document that fails to parse (or nests too deeply for the parser) is left
    to strawberry, which reports the error without skipping the other extensions'
    `on_operation` (ErrorCodes)."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None and is_cacheable(context.query):
            with suppress(GraphQLError, RecursionError):
                context.graphql_document = _parse(
                    context.query, context.parse_options.get("max_tokens")
                )
        yield


def cached_documents() -> int:
    return _parse.cache_info().currsize
