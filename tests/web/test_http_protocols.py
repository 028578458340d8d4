"""GraphQL over HTTP beyond one JSON answer: Apollo's multipart subscriptions, the
refusal of plain-HTTP subscriptions, persisted documents (APQ, trusted documents),
Retry-After, security headers and the metrics token."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, ServerFactory, token_for
from tests.live.ws_client import bearer, connect

MULTIPART = 'multipart/mixed;subscriptionSpec="1.0", application/json'
STREAM = """subscription Stream($content: String!) {
  sendMessageStream(input: {content: $content}) {
    __typename
    ... on ReplyDelta { text }
    ... on ReplyCompleted { message { content } }
  }
}"""
ME = "query Me { me { id } }"


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def multipart_payloads(body: str) -> list[dict[str, Any]]:
    """The JSON parts of a `multipart/mixed; boundary=graphql` body, heartbeats dropped."""
    parts: list[dict[str, Any]] = []
    for chunk in body.split("--graphql"):
        _, _, payload = chunk.partition("\r\n\r\n")
        payload = payload.strip()
        if payload and payload != "--":
            decoded = json.loads(payload)
            if decoded:
                parts.append(decoded)
    return parts


async def stream_subscription(
    http: httpx.AsyncClient, token: str | None, query: str, variables: dict[str, Any]
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    headers = {"Accept": MULTIPART, **(auth(token) if token else {})}
    async with http.stream(
        "POST", "/graphql", json={"query": query, "variables": variables}, headers=headers
    ) as response:
        body = (await response.aread()).decode()
    return response, multipart_payloads(body)


# --- subscriptions over HTTP ---------------------------------------------------------


async def test_multipart_subscription_streams_a_turn(server: LiveServer) -> None:
    token = token_for(f"multipart-{uuid.uuid4()}")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response, parts = await stream_subscription(
            http, token, STREAM, {"content": "add a task to buy milk"}
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("multipart/mixed")
    events = [part["payload"]["data"]["sendMessageStream"] for part in parts]
    kinds = [event["__typename"] for event in events]
    assert kinds[0] == "UserMessageSaved"
    assert kinds[-1] == "ReplyCompleted"
    text = "".join(event["text"] for event in events if event["__typename"] == "ReplyDelta")
    assert text == events[-1]["message"]["content"] == 'Added "buy milk" to your tasks.'


async def test_multipart_subscription_without_a_token_is_unauthenticated(
    server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        _, parts = await stream_subscription(http, None, STREAM, {"content": "hello"})
    errors = [error for part in parts for error in (part.get("payload") or {}).get("errors", [])]
    assert errors
    assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert not any((part.get("payload") or {}).get("data") for part in parts)


@pytest.mark.parametrize("accept", ["application/json", "application/graphql-response+json"])
async def test_a_subscription_over_plain_http_is_refused_with_a_code(
    server: LiveServer, accept: str
) -> None:
    token = token_for(f"plain-{uuid.uuid4()}")
    async with httpx.AsyncClient(base_url=server.url) as http:
        post = await http.post(
            "/graphql",
            json={"query": STREAM, "variables": {"content": "hi"}},
            headers={**auth(token), "Accept": accept},
        )
        get = await http.get(
            "/graphql",
            params={"query": 'subscription { messageAdded(conversationId: "x") { id } }'},
            headers={**auth(token), "Accept": accept},
        )
        stored = await http.post(
            "/graphql",
            json={"query": "{ conversations { totalCount } }"},
            headers=auth(token),
        )
    for response in (post, get):
        assert response.status_code == 400, response.text
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "multipart" in error["message"]
    # refused before running: nothing was sent
    assert stored.json()["data"]["conversations"]["totalCount"] == 0


async def test_multipart_streams_share_the_users_connection_limit(
    server_factory: ServerFactory,
) -> None:
    live = await server_factory(ws_max_connections_per_user=1)
    token = token_for(f"slots-{uuid.uuid4()}")
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        async with connect(live.ws_url, bearer(token)) as socket:
            assert socket.acknowledged
            response, _ = await stream_subscription(http, token, STREAM, {"content": "hi"})
            assert response.status_code == 429
        # the socket is closed: its slot is free again, and a finished stream frees its own
        for _ in range(2):
            response, parts = await stream_subscription(http, token, STREAM, {"content": "hi"})
            assert response.status_code == 200
            assert parts[-1]["payload"]["data"]["sendMessageStream"]["__typename"] == (
                "ReplyCompleted"
            )


async def test_a_multipart_stream_ends_when_its_token_expires(
    server_factory: ServerFactory,
) -> None:
    live = await server_factory(jwt_leeway_seconds=0)
    token = token_for(f"expiry-{uuid.uuid4()}", ttl=timedelta(seconds=2))
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        created = await http.post(
            "/graphql",
            json={"query": "mutation { createConversation(input: {}) { conversation { id } } }"},
            headers=auth(token),
        )
        conversation_id = created.json()["data"]["createConversation"]["conversation"]["id"]
        _, parts = await stream_subscription(
            http,
            token,
            "subscription ($c: ID!) { messageAdded(conversationId: $c) { id } }",
            {"c": conversation_id},
        )
    assert parts[-1]["payload"] is None
    assert parts[-1]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- automatic persisted queries -------------------------------------------------------


async def test_automatic_persisted_queries(server: LiveServer) -> None:
    token = token_for(f"apq-{uuid.uuid4()}")
    document = f"query Apq{uuid.uuid4().hex} {{ me {{ id }} }}"
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}}
    async with httpx.AsyncClient(base_url=server.url) as http:
        unknown = await http.post("/graphql", json={"extensions": extensions}, headers=auth(token))
        assert unknown.status_code == 200
        assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"

        registered = await http.post(
            "/graphql", json={"query": document, "extensions": extensions}, headers=auth(token)
        )
        assert registered.json()["data"]["me"]["id"]

        by_hash = await http.post("/graphql", json={"extensions": extensions}, headers=auth(token))
        assert by_hash.json() == registered.json()
        by_get = await http.get(
            "/graphql", params={"extensions": json.dumps(extensions)}, headers=auth(token)
        )
        assert by_get.json() == registered.json()

        forged = await http.post(
            "/graphql",
            json={"query": "{ __typename }", "extensions": extensions},
            headers=auth(token),
        )
        assert forged.status_code == 400
        assert forged.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


# --- trusted documents ------------------------------------------------------------------


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """GraphQL Codegen's persisted-documents.json shape: sha256 → document."""
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps({sha256(ME): ME, "relay-id-1": STREAM}))
    return path


async def test_trusted_documents_run_only_listed_operations(
    server_factory: ServerFactory, manifest: Path
) -> None:
    live = await server_factory(trusted_documents=str(manifest))
    token = token_for(f"trusted-{uuid.uuid4()}")
    by_hash = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256(ME)}}}
    async with httpx.AsyncClient(base_url=live.url) as http:
        for body in (by_hash, {"documentId": sha256(ME)}, {"query": ME}):
            ok = await http.post("/graphql", json=body, headers=auth(token))
            assert ok.json()["data"]["me"]["id"], (body, ok.text)

        free_form = await http.post(
            "/graphql", json={"query": "{ me { id createdAt } }"}, headers=auth(token)
        )
        assert free_form.status_code == 400
        assert free_form.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"

        unknown = await http.post("/graphql", json={"documentId": "nope"}, headers=auth(token))
        assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"

        # no registration in trusted mode: a hash with its (unlisted) document stays refused
        document = "{ me { createdAt } }"
        register = {"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}}
        refused = await http.post(
            "/graphql", json={"query": document, "extensions": register}, headers=auth(token)
        )
        assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"

        response, parts = await stream_subscription(http, token, STREAM, {"content": "hi"})
        assert response.status_code == 200
        assert parts[-1]["payload"]["data"]["sendMessageStream"]["__typename"] == "ReplyCompleted"

    async with connect(live.ws_url, bearer(token)) as socket:
        await socket.subscribe("1", 'subscription { messageAdded(conversationId: "x") { id } }')
        message = await socket.next_message()
        assert message["type"] == "error"
        assert message["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"


async def test_an_unreadable_manifest_is_a_configuration_error(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="TRUSTED_DOCUMENTS"):
        await server_factory(trusted_documents=str(tmp_path / "missing.json"))


# --- Retry-After ------------------------------------------------------------------------


async def test_rate_limited_responses_carry_retry_after(server_factory: ServerFactory) -> None:
    live = await server_factory(rate_limit_per_minute=1)
    client = live.client(token_for(f"retry-{uuid.uuid4()}"))
    send = 'mutation { sendMessage(input: {content: "hello"}) { message { id } } }'
    first = await client.raw(send)
    assert "Retry-After" not in first.headers
    limited = await client.raw(send)
    error = limited.json()["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert int(limited.headers["Retry-After"]) == error["extensions"]["retryAfter"] > 0


# --- security headers and the metrics token ----------------------------------------------


async def test_graphiql_page_has_security_headers_and_only_local_assets(
    server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "script-src 'self';" in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets
        assert all(a.startswith("/static/") or a == "data:," for a in assets), assets
        assert "<script>" not in page.text  # no inline code: the CSP forbids it
        for asset in assets:
            if asset.startswith("/static/"):
                served = await http.get(asset)
                assert served.status_code == 200, asset
                assert served.headers["x-content-type-options"] == "nosniff"
        api = await http.post("/graphql", json={"query": "{ __typename }"})
        assert api.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in api.headers


async def test_metrics_token_keeps_metrics_private(server_factory: ServerFactory) -> None:
    secret = "metrics-" + uuid.uuid4().hex
    live = await server_factory(metrics_token=secret)
    async with httpx.AsyncClient(base_url=live.url) as http:
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers=auth("not-" + secret))
        assert wrong.status_code == 401
        assert secret not in wrong.text
        ok = await http.get("/metrics", headers=auth(secret))
        assert ok.status_code == 200
        assert "taskchat" in ok.text
        assert (await http.get("/health")).status_code == 200


async def test_metrics_are_open_without_a_token(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/metrics")).status_code == 200


async def test_a_failed_multipart_subscription_gives_its_slot_back(
    server_factory: ServerFactory,
) -> None:
    live = await server_factory(ws_max_connections_per_user=1)
    token = token_for(f"slot-leak-{uuid.uuid4()}")
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
        for query in ("subscription { nope }", "subscription {", STREAM):
            response, parts = await stream_subscription(http, token, query, {"content": "hi"})
            assert response.status_code in (200, 400), response.text
        # the failures above did not keep the user's only slot
        assert response.status_code == 200
        assert parts[-1]["payload"]["data"]["sendMessageStream"]["__typename"] == "ReplyCompleted"
