"""Prometheus metrics (served at /metrics)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import Any, ParamSpec, TypeVar

from prometheus_client import Counter, Gauge, Histogram

P = ParamSpec("P")
T = TypeVar("T")

COMPILED_OPERATIONS = Counter(
    "taskchat_compiled_operations_total",
    "POST /graphql requests a compiled plan answered (compiled) or normal execution did "
    "(passed), of those that could have had one (JSON, with a token).",
    ["path"],
)
GRAPHQL_OPERATIONS = Counter(
    "taskchat_graphql_operations_total",
    "GraphQL operations by operation name, type and outcome (ok or an error code).",
    ["operation", "type", "outcome"],
)
GRAPHQL_DURATION = Histogram(
    "taskchat_graphql_operation_seconds",
    "Time to execute a GraphQL operation, by operation name, type and outcome.",
    ["operation", "type", "outcome"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
HTTP_REQUESTS = Counter(
    "taskchat_http_requests_total", "HTTP requests by path and status.", ["path", "status"]
)
DB_POOL_CHECKED_OUT = Gauge(
    "taskchat_db_pool_checked_out", "Database connections currently in use."
)
DB_POOL_SIZE = Gauge("taskchat_db_pool_size", "Database connections kept in the pool.")
AGENT_TURNS = Counter(
    "taskchat_agent_turns_total", "Agent turns by provider and outcome.", ["provider", "outcome"]
)
AGENT_TURN_SECONDS = Histogram(
    "taskchat_agent_turn_seconds",
    "Wall time of one agent turn, model calls included.",
    ["provider"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
REPLY_FEEDBACK = Counter(
    "taskchat_reply_feedback_total",
    "Ratings given to assistant replies (a changed rating counts again), by rating.",
    ["rating"],
)
WS_CONNECTIONS = Gauge("taskchat_ws_connections", "Open WebSocket connections.")
MODEL_TOKENS = Counter(
    "taskchat_model_tokens_total",
    "Tokens the model provider reported, by provider, model and kind (prompt or completion).",
    ["provider", "model", "kind"],
)
TOOL_CALLS = Counter(
    "taskchat_tool_calls_total",
    "Agent tool calls by tool (unknown names count as 'unknown') and outcome "
    "(ok, error: the tool refused; failed: it raised).",
    ["tool", "outcome"],
)
ACTIVE_SUBSCRIPTIONS = Gauge(
    "taskchat_active_subscriptions", "GraphQL subscriptions running now.", ["subscription"]
)
FANOUT_LAG_SECONDS = Histogram(
    "taskchat_fanout_lag_seconds",
    "Time from a change being published to this instance waking its subscribers of it "
    "(across instances on PostgreSQL; clocks of different hosts count).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DB_POOL_CHECKOUT_SECONDS = Histogram(
    "taskchat_db_pool_checkout_seconds",
    "Time to check a connection out of a pool: waiting for a free one or opening one, "
    "pre-ping included. 'app' serves requests, 'locks' holds turn locks.",
    ["pool"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


_series: dict[tuple[Any, tuple[str, ...]], Any] = {}


def series(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, looked up once per label values and kept (for metrics
    whose label values are bounded: a per-request `.labels()` call costs a lock and a
    tuple lookup of its own)."""
    key = (metric, labels)
    found = _series.get(key)
    if found is None:
        found = _series[key] = metric.labels(*labels)
    return found


def tracks_subscription(
    name: str,
) -> Callable[[Callable[P, AsyncIterator[T]]], Callable[P, AsyncIterator[T]]]:
    """Counts the decorated subscription generator in `ACTIVE_SUBSCRIPTIONS` while it runs."""

    def decorate(generator: Callable[P, AsyncIterator[T]]) -> Callable[P, AsyncIterator[T]]:
        gauge = ACTIVE_SUBSCRIPTIONS.labels(name)

        @functools.wraps(generator)
        async def tracked(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
            gauge.inc()
            try:
                source = generator(*args, **kwargs)
                try:
                    async for item in source:
                        yield item
                finally:
                    close = getattr(source, "aclose", None)
                    if close is not None:
                        await close()
            finally:
                gauge.dec()

        return tracked

    return decorate
