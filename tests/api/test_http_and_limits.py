"""GraphQL over HTTP rules, query limits, error masking and production hardening."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from db.engine import create_engine
from main import run_migrations
from tests.conftest import (
    GraphQLClient,
    LiveServer,
    ServerFactory,
    _recreate_pg_database,
    _worker,
    token_for,
)


async def test_deep_query_is_too_complex(alice: GraphQLClient) -> None:
    nested = "lastMessage { conversation { " * 8 + "id" + " } }" * 8
    query = f"{{ conversations {{ edges {{ node {{ {nested} }} }} }} }}"
    assert await alice.error_code(query) == "QUERY_TOO_COMPLEX"


async def test_too_many_aliases_is_too_complex(alice: GraphQLClient) -> None:
    aliases = " ".join(f"a{i}: me {{ id }}" for i in range(40))
    assert await alice.error_code(f"{{ {aliases} }}") == "QUERY_TOO_COMPLEX"


async def test_too_many_tokens_is_too_complex(alice: GraphQLClient) -> None:
    fields = " ".join("id" for _ in range(2500))
    assert await alice.error_code(f"{{ me {{ {fields} }} }}") == "QUERY_TOO_COMPLEX"


async def test_nested_pages_beyond_the_cost_limit_are_too_complex(alice: GraphQLClient) -> None:
    """100 conversations x 100 messages x 100 messages: shallow enough, far too costly."""
    query = """{ conversations(first: 100) { edges { node {
        messages(first: 100) { edges { node { conversation {
            messages(first: 100) { edges { node { id } } } } } } } } } } }"""
    payload = await alice.execute(query)
    assert payload["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert "cost" in payload["errors"][0]["message"]


async def test_page_sizes_in_variables_are_costed_by_their_values(alice: GraphQLClient) -> None:
    query = """query($n: Int) { conversations(first: $n) { edges { node {
        messages(first: $n) { edges { node { id content role createdAt } } } } } } }"""
    assert await alice.error_code(query, {"n": 100}) == "QUERY_TOO_COMPLEX"
    data = await alice.data(query, {"n": 10})
    assert data == {"conversations": {"edges": []}}


async def test_a_typical_screen_is_within_the_cost_limit(alice: GraphQLClient) -> None:
    query = """{ conversations(first: 20) { totalCount edges { cursor node {
        id title updatedAt messageCount lastMessage { id role content createdAt }
        messages(last: 20) { edges { node { id role content toolCalls { name ok } } } } } } } }"""
    data = await alice.data(query)
    assert data["conversations"]["totalCount"] == 0


async def test_a_modest_query_is_within_limits(alice: GraphQLClient) -> None:
    data = await alice.data(
        "{ conversations(first: 5) { edges { node { lastMessage { conversation { title } } } } } }"
    )
    assert data == {"conversations": {"edges": []}}


async def test_get_runs_queries_but_never_mutations(server: LiveServer) -> None:
    token = token_for("http-get-user")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        query = await http.get("/graphql", params={"query": "{ me { id } }"}, headers=headers)
        assert query.status_code == 200
        assert query.json()["data"]["me"]["id"]
        mutation = 'mutation { createTask(input: {title: "via GET"}) { task { id } } }'
        refused = await http.get("/graphql", params={"query": mutation}, headers=headers)
        assert refused.status_code == 405
        tasks = await http.post(
            "/graphql", json={"query": "{ tasks { totalCount } }"}, headers=headers
        )
        assert tasks.json()["data"]["tasks"]["totalCount"] == 0


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"],
)
async def test_simple_request_posts_are_refused(server: LiveServer, content_type: str) -> None:
    """A browser can send these cross-site without a preflight (CSRF)."""
    token = token_for("csrf-user")
    body = 'query=mutation { createTask(input: {title: "csrf"}) { task { id } } }'
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post(
            "/graphql",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
        )
        assert response.status_code in (400, 415)
        tasks = await http.post(
            "/graphql",
            json={"query": "{ tasks { totalCount } }"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert tasks.json()["data"]["tasks"]["totalCount"] == 0


async def test_graphql_response_json_is_negotiated(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        accept = {"Accept": "application/graphql-response+json"}
        ok = await http.post("/graphql", json={"query": "{ __typename }"}, headers=accept)
        assert ok.status_code == 200
        assert ok.headers["content-type"].startswith("application/graphql-response+json")
        invalid = await http.post("/graphql", json={"query": "{ nope }"}, headers=accept)
        assert invalid.status_code == 400
        assert invalid.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        legacy = await http.post("/graphql", json={"query": "{ nope }"})
        assert legacy.status_code == 200
        assert legacy.headers["content-type"].startswith("application/json")


async def test_graphiql_is_served_in_development(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert "graphiql" in page.text.lower()


async def test_production_turns_off_graphiql_and_introspection(
    server_factory: ServerFactory,
) -> None:
    production = await server_factory(environment="production")
    async with httpx.AsyncClient(base_url=production.url) as http:
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 404
        response = await http.post("/graphql", json={"query": "{ __schema { types { name } } }"})
        payload = response.json()
        assert payload.get("data") is None
        assert "introspection" in payload["errors"][0]["message"].lower()


async def test_anonymous_introspection_is_allowed_in_development(server: LiveServer) -> None:
    anonymous = server.client()
    data = await anonymous.data("{ __schema { queryType { name } } }")
    assert data["__schema"]["queryType"]["name"] == "Query"


@pytest.fixture
async def broken_database_url(backend: str, tmp_path: Path) -> str:
    """A migrated database of its own whose tasks table then disappears."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'broken.db'}"
    else:
        url = await _recreate_pg_database(f"taskchat_broken_{_worker()}")
    await asyncio.to_thread(run_migrations, url)
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE task_effects"))  # it refers to tasks
        await connection.execute(text("DROP TABLE tasks"))
    await engine.dispose()
    return url


async def test_unexpected_errors_are_masked_with_a_request_id(
    server_factory: ServerFactory, broken_database_url: str
) -> None:
    broken = await server_factory(database_url=broken_database_url)
    client = broken.client(token_for("masked-error-user"))
    response = await client.raw("{ tasks { totalCount } }", headers={"X-Request-ID": "req-123"})
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-123"}
    assert error["message"] == "Internal server error (request id req-123)"
    assert "tasks" not in error["message"].lower()
    assert "Traceback" not in response.text
    assert "SELECT" not in response.text.upper()
    assert response.headers["x-request-id"] == "req-123"
