"""Prometheus metrics (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
