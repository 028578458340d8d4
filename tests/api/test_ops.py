"""Liveness, readiness and metrics."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.conftest import GraphQLClient, LiveServer, ServerFactory, make_settings, start_server


async def test_health_answers_while_serving(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_database_answers(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/ready")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_not_ready_when_the_sqlite_file_cannot_be_opened(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    unreachable = f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'x.db'}"
    down = await server_factory(database_url=unreachable)
    async with httpx.AsyncClient(base_url=down.url) as http:
        ready = await http.get("/ready")
        health = await http.get("/health")
    assert ready.status_code == 503
    assert health.status_code == 200


async def test_metrics_count_operations_by_name_and_outcome(
    server: LiveServer, alice: GraphQLClient
) -> None:
    await alice.data("query MetricsProbe { me { id } }")
    await alice.execute('query MetricsProbeBad { task(id: "nope") { id } }')
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    body = response.text
    assert 'operation="MetricsProbe",outcome="ok",type="query"' in body
    assert 'operation="MetricsProbeBad",outcome="BAD_USER_INPUT",type="query"' in body
    assert "taskchat_graphql_operation_seconds_bucket" in body
    assert "taskchat_db_pool_checked_out" in body


async def test_operation_names_of_anonymous_clients_do_not_grow_metrics(
    server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        for n in range(50):
            await http.post(
                "/graphql", json={"query": f"query Probe{n}x{id(http)} {{ __typename }}"}
            )
        body = (await http.get("/metrics")).text
    assert f"Probe0x{id(http)}" not in body
    assert 'operation="unauthenticated"' in body


async def test_pages_on_other_origins_may_call_the_api_in_development(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        preflight = await http.options(
            "/graphql",
            headers={
                "Origin": "http://localhost:5173",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] in ("*", "http://localhost:5173")


async def test_only_configured_origins_may_call_the_api(server_factory: ServerFactory) -> None:
    live = await server_factory(cors_origins="https://app.example")
    async with httpx.AsyncClient(base_url=live.url) as http:
        allowed = await http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"Origin": "https://app.example"}
        )
        other = await http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"Origin": "https://evil.example"}
        )
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers


async def test_not_ready_when_postgresql_does_not_answer(
    database_urls: dict[str, str], tmp_path: Path
) -> None:
    """PostgreSQL down (nothing listens on the port): /ready says 503, /health still 200."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/taskchat"
    live = await start_server(make_settings(url))
    try:
        async with httpx.AsyncClient(base_url=live.url) as http:
            ready = await http.get("/ready")
            health = await http.get("/health")
    finally:
        await live.stop()
    assert ready.status_code == 503
    assert health.status_code == 200
