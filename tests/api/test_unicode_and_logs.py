"""Case-insensitive matching beyond ASCII, and the structured operation log."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.conftest import GraphQLClient, ServerFactory, token_for

SEARCH = "query($q: String) { conversations(search: $q) { edges { node { title } } } }"


async def test_search_ignores_case_in_every_script(alice: GraphQLClient) -> None:
    for title in ("Éclair recipes", "ПЛАН на неделю"):
        await alice.data(
            "mutation($t: String) {"
            " createConversation(input: {title: $t}) { conversation { id } } }",
            {"t": title},
        )
    found = await alice.data(SEARCH, {"q": "éclair"})
    assert [e["node"]["title"] for e in found["conversations"]["edges"]] == ["Éclair recipes"]
    found = await alice.data(SEARCH, {"q": "план"})
    assert [e["node"]["title"] for e in found["conversations"]["edges"]] == ["ПЛАН на неделю"]


async def test_the_assistant_finds_titles_ignoring_case_in_every_script(
    alice: GraphQLClient,
) -> None:
    await alice.data('mutation { createTask(input: {title: "Öl wechseln"}) { task { id } } }')
    sent = await alice.data(
        'mutation { sendMessage(input: {content: "complete öl wechseln"}) {'
        " message { toolCalls { ok } } } }"
    )
    assert sent["sendMessage"]["message"]["toolCalls"] == [{"ok": True}]
    tasks = await alice.data("{ tasks { edges { node { title status } } } }")
    assert tasks["tasks"]["edges"] == [{"node": {"title": "Öl wechseln", "status": "COMPLETED"}}]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_production_logs_one_json_line_per_operation(
    server_factory: ServerFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    live = await server_factory(environment="production")
    subject = f"logged-{uuid.uuid4()}"
    async with httpx.AsyncClient(base_url=live.url) as http:
        client = GraphQLClient(http, token_for(subject))
        await client.raw("query WhoAmI { me { id } }", headers={"X-Request-ID": "log-123"})
    lines = [line for line in capfd.readouterr().err.splitlines() if "log-123" in line]
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["event"] == "graphql operation"
    assert entry["request_id"] == "log-123"
    assert entry["user"] == subject
    assert entry["operation"] == "WhoAmI"
    assert entry["outcome"] == "ok"
    assert isinstance(entry["elapsed_ms"], float)
