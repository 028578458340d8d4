"""What GraphQL execution alone costs for S1's selection (issue 14, the generic path's
budget): the same selection over types of the same shape with every value in memory,
so no database, no HTTP, no JSON, and nothing of ours but the shapes.

    python -m bench.executor_floor [--pages 3000]

Prints CPU per page (`time.process_time`, after a warm-up, with the server's garbage
collector settings) of
1. Strawberry's `Schema.execute` with its parse and validation caches (what the server
   runs, but for its own extensions), and
2. graphql-core's `execute` alone on a document parsed once (no validation), over the
   same resolvers.
Compare them with PostGraphile 5's whole request (server CPU per S1 page in
bench/RESULTS.md, measured on the same machine): when the executor alone costs more,
no work of ours under it brings the generic path to that budget.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import strawberry
from graphql import execute, parse
from strawberry.extensions import ParserCache, ValidationCache

from bench.run import S1_QUERY
from core.config import Settings
from core.gc_tuning import tune_garbage_collector


@strawberry.type
class LastMessage:
    content: str
    created_at: datetime


@strawberry.type
class Conversation:
    id: strawberry.ID
    title: str
    updated_at: datetime
    count: strawberry.Private[int]
    last: strawberry.Private[LastMessage]

    @strawberry.field
    async def message_count(self) -> int:  # a DataLoader's result, as the server's
        return self.count

    @strawberry.field
    async def last_message(self) -> LastMessage | None:
        return self.last


@strawberry.type
class Edge:
    cursor: str
    node: Conversation


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class ConversationConnection:
    total_count: int
    edges: list[Edge]
    page_info: PageInfo


_NOW = datetime.now(UTC)
_NODES = [
    Conversation(
        id=strawberry.ID(str(uuid.uuid4())),
        title=f"conversation {n}",
        updated_at=_NOW,
        count=30,
        last=LastMessage(content="the newest message of the conversation", created_at=_NOW),
    )
    for n in range(20)
]
_CURSOR = "c" * 60


@strawberry.type
class Query:
    @strawberry.field
    async def conversations(self, first: int = 20) -> ConversationConnection:
        return ConversationConnection(
            total_count=200,
            edges=[Edge(cursor=_CURSOR, node=node) for node in _NODES[:first]],
            page_info=PageInfo(has_next_page=True, end_cursor=_CURSOR),
        )


async def _per_page(run: Callable[[], Awaitable[Any]], pages: int) -> float:
    for _ in range(min(pages, 200)):
        await run()
    started = time.process_time()
    for _ in range(pages):
        await run()
    return (time.process_time() - started) / pages * 1e6


async def measure(pages: int) -> dict[str, float]:
    schema = strawberry.Schema(Query, extensions=[ParserCache, ValidationCache])
    first = await schema.execute(S1_QUERY)
    assert first.errors is None, first.errors
    assert first.data is not None and len(first.data["conversations"]["edges"]) == 20
    document = parse(S1_QUERY)

    async def core_alone() -> Any:
        result = execute(schema._schema, document)
        return await result if isinstance(result, Awaitable) else result

    return {
        "strawberry": await _per_page(lambda: schema.execute(S1_QUERY), pages),
        "graphql-core": await _per_page(core_alone, pages),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3000)
    args = parser.parse_args(argv)
    tune_garbage_collector(Settings.model_fields["gc_gen0_threshold"].default)
    figures = asyncio.run(measure(args.pages))
    print(f"S1's selection, every value in memory, {args.pages} pages:")
    print(
        f"  Strawberry Schema.execute (parse and validation cached): {figures['strawberry']:,.0f} µs CPU a page"
    )
    print(
        f"  graphql-core execute alone (parsed once, not validated):  {figures['graphql-core']:,.0f} µs CPU a page"
    )


if __name__ == "__main__":
    main()
