"""Real JavaScript clients against taskchat: graphql-http's conformance audit, graphql-ws
and Apollo Client's cache-merged pagination. Each runs as `node peer/<script>.mjs`."""

from __future__ import annotations

import asyncio
import shutil
import uuid

import httpx
import pytest

from tests.conftest import ROOT, GraphQLClient, LiveServer, token_for

PEER = ROOT / "peer"


async def run_peer(script: str, *args: str, timeout: float = 60) -> tuple[int, str]:
    """Runs a peer script; returns its exit code and its output (also printed)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the Node peers need Node.js 18+ on PATH")
    if not (PEER / "node_modules").is_dir():
        pytest.fail("peer/node_modules is missing: run make test / npm ci in peer/")
    process = await asyncio.create_subprocess_exec(
        node,
        script,
        *args,
        cwd=PEER,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"node {script} did not finish within {timeout} s")
    text = output.decode()
    print(f"--- node {script} ---\n{text}")
    assert process.returncode is not None
    return process.returncode, text


async def test_graphql_http_audit_passes(server: LiveServer) -> None:
    code, output = await run_peer("audit.mjs", server.url)
    assert code == 0, output
    assert '"error":0' in output


async def test_graphql_ws_client_receives_both_messages_of_a_turn(
    server: LiveServer, alice: GraphQLClient
) -> None:
    data = await alice.data(
        'mutation { createConversation(input: {title: "peer"}) { conversation { id } } }'
    )
    conversation_id = data["createConversation"]["conversation"]["id"]

    code, output = await run_peer("subscribe.mjs", server.url, alice.token or "", conversation_id)

    assert code == 0, output
    assert "ok: both messages of the turn arrived" in output
    stored = await alice.data(
        "query ($id: ID!) { conversation(id: $id) { lastMessage { role content } } }",
        {"id": conversation_id},
    )
    assert stored["conversation"]["lastMessage"] == {
        "role": "ASSISTANT",
        "content": 'Added "buy milk" to your tasks.',
    }


async def test_apollo_client_merges_task_pages_newest_first(
    server: LiveServer, alice: GraphQLClient
) -> None:
    code, output = await run_peer("apollo.mjs", server.url, alice.token or "")

    assert code == 0, output
    assert "ok: all 5 tasks merged newest first" in output
    tasks = await alice.data("{ tasks { totalCount } }")
    assert tasks["tasks"]["totalCount"] == 5


# Regression for graphql-http audits D586 / 5E5B (warnings): a request error answered as
# application/graphql-response+json carried `"data": null`; the spec says no data entry.
@pytest.mark.parametrize(
    "query", [pytest.param("{", id="parse-error"), pytest.param("{ noSuchField }", id="invalid")]
)
async def test_request_error_as_graphql_response_json_has_no_data_entry(
    server: LiveServer, query: str
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post(
            "/graphql",
            json={"query": query},
            headers={
                "Accept": "application/graphql-response+json",
                "Authorization": f"Bearer {token_for(f'peer-{uuid.uuid4()}')}",
            },
        )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["message"]
