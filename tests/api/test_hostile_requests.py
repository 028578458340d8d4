"""Requests an attacker (or an unlucky client) sends: each is answered quickly with a 4xx
or a contract code, never a 5xx, a hang or a broken connection for the next request."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import jwt
import pytest

from schema.extensions import parsing
from tests.conftest import TEST_SECRET, GraphQLClient, LiveServer, ServerFactory, token_for
from tests.live.ws_client import bearer, connect

T = TypeVar("T")

#: a liveness bound: an answer that takes longer is a hang, whatever it says
ANSWER_WITHIN = 10.0


async def _within(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, ANSWER_WITHIN)


async def _still_healthy(client: GraphQLClient) -> None:
    health = await _within(client.http.get("/health"))
    assert health.status_code == 200
    assert (await _within(client.data("{ me { id } }")))["me"]["id"]


def _codes(payload: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in payload.get("errors") or []]


# --- documents whose checks could take exponential time --------------------------------


def _fan_out_document(levels: int) -> str:
    """Each fragment spreads the previous one twice: 2^levels fields once expanded."""
    fragments = ["fragment F0 on Query { me { id } }"]
    for level in range(1, levels + 1):
        fragments.append(f"fragment F{level} on Query {{ ...F{level - 1} ...F{level - 1} }}")
    return f"query {{ ...F{levels} }}\n" + "\n".join(fragments)


async def test_fragment_fan_out_is_too_complex_at_once(alice: GraphQLClient) -> None:
    payload = await _within(alice.execute(_fan_out_document(40)))
    assert _codes(payload) == ["QUERY_TOO_COMPLEX"]
    await _still_healthy(alice)


async def test_fragment_fan_out_of_nested_fields_is_too_complex(alice: GraphQLClient) -> None:
    fragments = ["fragment F0 on Conversation { id title }"]
    for level in range(1, 31):
        fragments.append(
            f"fragment F{level} on Conversation {{ ...F{level - 1} "
            f"messages {{ edges {{ node {{ conversation {{ ...F{level - 1} }} }} }} }} }}"
        )
    document = "query { conversations { edges { node { ...F30 } } } }\n" + "\n".join(fragments)
    payload = await _within(alice.execute(document))
    assert "QUERY_TOO_COMPLEX" in _codes(payload)
    await _still_healthy(alice)


async def test_a_small_fragment_tree_still_runs(alice: GraphQLClient) -> None:
    data = await alice.data(_fan_out_document(3))
    assert data["me"]["id"]


# --- the cost limit cannot be walked around ---------------------------------------------

NESTED_PAGES = """
query($n: Int = 100) {
  conversations(first: $n) { edges { node {
    messages(first: $n) { edges { node { id content } } }
  } } }
}"""


async def test_variable_defaults_are_costed(alice: GraphQLClient) -> None:
    assert _codes(await alice.execute(NESTED_PAGES)) == ["QUERY_TOO_COMPLEX"]
    # the same document with small pages is fine
    data = await alice.data(NESTED_PAGES, {"n": 5})
    assert data["conversations"]["edges"] == []


FRAGMENTED_PAGES = """
query {
  conversations(first: 100) { ...Page }
}
fragment Page on ConversationConnection {
  edges { node { messages(last: 100) { ... on MessageConnection { edges { node {
    conversation { messages(first: 100) { ...Ids } }
  } } } } } }
}
fragment Ids on MessageConnection { edges { node { id } } }
"""

INLINE_PAGES = """
query {
  conversations { ... on ConversationConnection { edges { node {
    messages { ... on MessageConnection { edges { node { conversation {
      messages { ... on MessageConnection { edges { node { id content } } } }
    } } } } }
  } } } }
}"""


@pytest.mark.parametrize("document", [FRAGMENTED_PAGES, INLINE_PAGES], ids=["named", "inline"])
async def test_connections_inside_fragments_are_costed_per_item(
    alice: GraphQLClient, document: str
) -> None:
    assert _codes(await alice.execute(document)) == ["QUERY_TOO_COMPLEX"]


# --- one field's error leaves the request's connection clean -----------------------------


async def test_an_error_in_one_field_does_not_break_the_next_requests(
    alice: GraphQLClient,
) -> None:
    created = await alice.data("mutation { createConversation(input: {}) { conversation { id } } }")
    conversation_id = created["createConversation"]["conversation"]["id"]
    query = """query($id: ID!) { conversation(id: $id) {
        messageCount messages(first: 101) { edges { node { id } } } } }"""
    for _ in range(3):
        payload = await _within(alice.execute(query, {"id": conversation_id}))
        assert "BAD_USER_INPUT" in _codes(payload)
        for _ in range(3):
            data = await _within(alice.data("{ me { id } conversations { totalCount } }"))
            assert data["conversations"]["totalCount"] >= 1


# --- bodies ------------------------------------------------------------------------------


async def test_an_oversized_body_is_413_before_it_is_read(alice: GraphQLClient) -> None:
    padding = "#" + "x" * (2 * 1024 * 1024) + "\n"
    response = await _within(alice.raw(padding + "{ me { id } }"))
    assert response.status_code == 413
    await _still_healthy(alice)


async def test_an_oversized_chunked_body_is_413(alice: GraphQLClient) -> None:
    async def chunks() -> Any:
        yield b'{"query": "#'
        for _ in range(64):
            yield b"x" * 65536
        yield b'\\n{ me { id } }"}'

    response = await _within(
        alice.http.post(
            "/graphql",
            content=chunks(),
            headers={**alice.headers(), "Content-Type": "application/json"},
        )
    )
    assert response.status_code == 413


async def test_large_documents_are_not_kept_in_the_parse_cache(alice: GraphQLClient) -> None:
    before = parsing.cached_documents()
    for number in range(3):
        padding = "# " + f"{number}-{uuid.uuid4()}" * 2000 + "\n"
        assert (await alice.data(padding + "{ me { id } }"))["me"]["id"]
    assert parsing.cached_documents() == before


async def test_invalid_utf8_is_a_client_error(alice: GraphQLClient) -> None:
    response = await alice.http.post(
        "/graphql",
        content=b'{"query": "{ me { id \xff\xfe } }"}',
        headers={**alice.headers(), "Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500


def _nested_list(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [200, 5000, 100_000])
async def test_deeply_nested_json_variables_are_a_client_error(
    alice: GraphQLClient, depth: int
) -> None:
    body = (
        '{"query": "query($t: String!) { conversations(search: $t) { totalCount } }", '
        '"variables": {"t": ' + _nested_list(depth) + "}}"
    )
    response = await _within(
        alice.http.post(
            "/graphql",
            content=body.encode(),
            headers={**alice.headers(), "Content-Type": "application/json"},
        )
    )
    assert response.status_code < 500
    if response.status_code == 200:
        assert _codes(response.json()) == ["BAD_USER_INPUT"]
    await _still_healthy(alice)


@pytest.mark.parametrize(
    ("depth", "code"),
    [(100, "GRAPHQL_VALIDATION_FAILED"), (300, "QUERY_TOO_COMPLEX"), (900, "QUERY_TOO_COMPLEX")],
)
async def test_deeply_nested_list_literals_are_refused_with_a_code(
    alice: GraphQLClient, depth: int, code: str
) -> None:
    """A list is no String (validation); nested past what the parser follows, too complex."""
    document = "{ conversations(search: " + _nested_list(depth) + ") { totalCount } }"
    payload = await _within(alice.execute(document))
    assert _codes(payload) == [code]


@pytest.mark.parametrize("depth", [13, 150, 320, 600])
async def test_documents_nested_past_the_depth_limit_are_too_complex(
    alice: GraphQLClient, depth: int
) -> None:
    # valid all the way down: a conversation's last message's conversation's ...
    links = ["lastMessage {", "conversation {"] * (depth // 2)
    document = '{ conversation(id: "x") { ' + " ".join(links) + " id" + " }" * (len(links) + 2)
    payload = await _within(alice.execute(document))
    assert _codes(payload) == ["QUERY_TOO_COMPLEX"]


async def test_syntax_and_validation_errors_have_their_codes(alice: GraphQLClient) -> None:
    assert _codes(await alice.execute("{ me { id ")) == ["GRAPHQL_PARSE_FAILED"]
    assert _codes(await alice.execute("{ me { nope } }")) == ["GRAPHQL_VALIDATION_FAILED"]


# --- tokens with odd claims ---------------------------------------------------------------


@pytest.mark.parametrize(
    "exp",
    ["1999999999", 1e300, int(datetime(9999, 12, 31, tzinfo=UTC).timestamp()) * 10, True],
    ids=["numeric-string", "1e300", "year-beyond-9999", "boolean"],
)
async def test_a_signed_token_with_an_odd_expiry_is_unauthenticated(
    server: LiveServer, exp: object
) -> None:
    token = jwt.encode({"sub": f"user-{uuid.uuid4()}", "exp": exp}, TEST_SECRET, "HS256")
    response = await server.client(token).raw("{ me { id } }")
    assert response.status_code == 401
    assert _codes(response.json()) == ["UNAUTHENTICATED"]


@pytest.mark.parametrize("subject", ["a\x00b", "line\nbreak", "x" * 256])
async def test_a_signed_token_with_an_unstorable_subject_is_unauthenticated(
    server: LiveServer, subject: str
) -> None:
    token = jwt.encode({"sub": subject, "exp": 4102444800}, TEST_SECRET, "HS256")
    response = await server.client(token).raw("{ me { id } }")
    assert response.status_code == 401
    assert _codes(response.json()) == ["UNAUTHENTICATED"]


# --- races --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change", ["completeTask(input: {id: $id})", 'updateTask(input: {id: $id, title: "t2"})']
)
async def test_changing_a_task_while_it_is_deleted_is_not_found(
    alice: GraphQLClient, change: str
) -> None:
    outcomes: set[str] = set()
    for _ in range(15):
        created = await alice.data('mutation { createTask(input: {title: "t"}) { task { id } } }')
        task_id = created["createTask"]["task"]["id"]
        changed, deleted = await asyncio.gather(
            alice.execute(
                f"mutation($id: ID!) {{ {change} {{ task {{ id }} }} }}", {"id": task_id}
            ),
            alice.execute(
                "mutation($id: ID!) { deleteTask(input: {id: $id}) { deletedId } }", {"id": task_id}
            ),
        )
        assert "errors" not in deleted, deleted
        outcomes.update(_codes(changed) or ["ok"])
    assert outcomes <= {"ok", "NOT_FOUND"}, outcomes


# --- WebSocket frames ---------------------------------------------------------------------


@pytest.mark.parametrize("depth", [5000, 200_000])
async def test_a_deeply_nested_websocket_frame_closes_with_4400(
    server: LiveServer, depth: int
) -> None:
    async with connect(server.ws_url, bearer(token_for(f"user-{uuid.uuid4()}"))) as socket:
        assert socket.acknowledged
        await socket.websocket.send(_nested_list(depth))
        assert await socket.wait_closed(ANSWER_WITHIN) == 4400


# --- production tells nothing about the schema --------------------------------------------


async def test_production_does_not_suggest_field_names(server_factory: ServerFactory) -> None:
    production = await server_factory(environment="production")
    async with httpx.AsyncClient(base_url=production.url) as http:
        response = await http.post("/graphql", json={"query": "{ conversaton { id } }"})
        payload = response.json()
    assert _codes(payload) == ["GRAPHQL_VALIDATION_FAILED"]
    text = json.dumps(payload)
    assert "Did you mean" not in text
    assert "conversation" not in text.replace("conversaton", "")


# --- repeated fields: graphql-core compares same-named fields pairwise ---------------------


@pytest.mark.parametrize(
    "document",
    [
        "{" + " me { id }" * 400 + "}",
        "{ me {" + " id" * 1500 + " } }",
        "{ me { ...F" + " ...F" * 600 + " } } fragment F on User { id }",
        "{" + " ... on Query { me { id } }" * 200 + "}",
    ],
    ids=["fields", "leaves", "spreads", "inline-fragments"],
)
async def test_a_field_repeated_hundreds_of_times_is_too_complex(
    alice: GraphQLClient, document: str
) -> None:
    payload = await _within(alice.execute(document))
    assert _codes(payload) == ["QUERY_TOO_COMPLEX"]
    await _still_healthy(alice)


async def test_a_field_repeated_a_few_times_still_runs(alice: GraphQLClient) -> None:
    data = await alice.data("{ me { id id id } me { createdAt } }")
    assert data["me"]["id"]
