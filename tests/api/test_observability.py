"""What /metrics tells about turns, tokens, tools, subscriptions, fan-out and the pool,
and OpenTelemetry spans when tracing is on. Metrics are per process (every server of a
test worker shares them), so each test compares a scrape before and after its action."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from core.metrics import COMPILED_OPERATIONS
from tests.conftest import (
    GraphQLClient,
    LiveServer,
    make_settings,
    start_server,
    token_for,
)
from tests.live.test_websocket import (
    MESSAGE_ADDED,
    create_conversation,
    next_data,
    send_message,
    wait_until_live,
)
from tests.live.ws_client import bearer, connect

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(server: LiveServer) -> Samples:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_a_turn_shows_its_latency_tokens_tool_calls_and_pool_checkouts(
    server: LiveServer, alice: GraphQLClient
) -> None:
    before = await scrape(server)
    conversation_id = await create_conversation(alice)
    await send_message(alice, conversation_id, "add a task to buy milk")
    await send_message(alice, conversation_id, "mark walk the unicorn as done")
    after = await scrape(server)

    def grew(name: str, by: float = 1, **labels: str) -> bool:
        return value(after, name, **labels) - value(before, name, **labels) >= by

    assert grew("taskchat_agent_turn_seconds_count", 2, provider="offline")
    prompt = {"provider": "offline", "model": "offline", "kind": "prompt"}
    completion = {**prompt, "kind": "completion"}
    assert grew("taskchat_model_tokens_total", 1, **prompt)
    assert grew("taskchat_model_tokens_total", 1, **completion)
    assert grew("taskchat_tool_calls_total", tool="add_task", outcome="ok")
    assert grew("taskchat_tool_calls_total", tool="complete_task", outcome="error")
    assert grew("taskchat_db_pool_checkout_seconds_count", pool="app")


async def _gauge_reaches(server: LiveServer, expected: float) -> float:
    """The subscription gauge once it shows `expected` (a finished subscription is
    counted out when its task ends, just after the client saw `complete`)."""
    for _ in range(100):
        current = value(
            await scrape(server), "taskchat_active_subscriptions", subscription="messageAdded"
        )
        if current == expected:
            return current
        await asyncio.sleep(0.05)
    return current


async def test_subscriptions_are_counted_and_fan_out_lag_is_measured(
    server: LiveServer, alice: GraphQLClient
) -> None:
    conversation_id = await create_conversation(alice)
    before = await scrape(server)
    active = value(before, "taskchat_active_subscriptions", subscription="messageAdded")
    async with connect(server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe("1", MESSAGE_ADDED, {"conversationId": conversation_id})
        await wait_until_live(ws, "1", alice, conversation_id)
        assert await _gauge_reaches(server, active + 1) == active + 1
        sent = await send_message(alice, conversation_id, "hello")
        delivered = {next_data(await ws.next_message(), "1")["messageAdded"]["id"] for _ in "qr"}
        assert sent["message"]["id"] in delivered
        during = await scrape(server)
        await ws.complete("1")
        assert await _gauge_reaches(server, active) == active
    lags = value(during, "taskchat_fanout_lag_seconds_count") - value(
        before, "taskchat_fanout_lag_seconds_count"
    )
    assert lags >= 2  # the warm-up turn and this one, each publishing question and reply


def spans_of(exporter: InMemorySpanExporter) -> Iterator[ReadableSpan]:
    yield from exporter.get_finished_spans()


async def test_tracing_on_gives_a_request_its_spans_down_to_the_database(
    database_urls: dict[str, str], backend: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    live = await start_server(
        make_settings(database_urls[backend], otel_enabled=True), tracer_provider=provider
    )
    try:
        client = live.client(token_for("traced-user"))
        await client.data("{ tasks(first: 5) { totalCount } }")
        # answered by its compiled plan, which the instrumentation must see too
        compiled = COMPILED_OPERATIONS.labels("compiled")._value.get()
        await client.data("{ conversations(first: 2) { totalCount } }")
        assert COMPILED_OPERATIONS.labels("compiled")._value.get() == compiled + 1
        async with httpx.AsyncClient(base_url=live.url) as http:
            assert (await http.get("/health")).status_code == 200
    finally:
        await live.stop()

    spans = list(spans_of(exporter))
    requests = [
        span
        for span in spans
        if span.kind == SpanKind.SERVER and span.attributes and span.name == "POST /graphql"
    ]
    assert len(requests) == 2
    for request, table in zip(requests, ["tasks", "conversations"], strict=True):
        trace_id = request.context.trace_id if request.context else None
        in_request = [span for span in spans if span.context and span.context.trace_id == trace_id]
        scopes = {s.instrumentation_scope.name for s in in_request if s.instrumentation_scope}
        assert "opentelemetry.instrumentation.sqlalchemy" in scopes
        if backend == "postgres" and table == "tasks":
            assert "opentelemetry.instrumentation.asyncpg" in scopes
        statements = [
            str(span.attributes.get("db.statement", span.attributes.get("db.query.text", "")))
            for span in in_request
            if span.attributes
        ]
        assert any(f"FROM {table}" in statement for statement in statements), statements
    # probes are not traced
    assert not any("/health" in span.name for span in spans)


async def test_tracing_is_off_by_default(database_urls: dict[str, str], backend: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    live = await start_server(make_settings(database_urls[backend]), tracer_provider=provider)
    try:
        assert live.settings.otel_enabled is False
        await live.client(token_for("untraced-user")).data("{ tasks(first: 5) { totalCount } }")
    finally:
        await live.stop()
    assert list(spans_of(exporter)) == []
