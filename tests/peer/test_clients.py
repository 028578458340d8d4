"""The JavaScript clients' ecosystem against a live server: urql, Apollo Client's
transports (APQ, multipart HTTP, graphql-ws), the README's graphql-ws snippet as
written, relay-compiler and graphql-codegen; the documents both compile are then run
as trusted documents."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import uuid
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ROOT, GraphQLClient, LiveServer, ServerFactory, token_for
from tests.peer.test_node_peers import PEER, run_peer

BIN = PEER / "node_modules" / ".bin"


async def run_tool(*command: str, cwd: Path, timeout: float = 60) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    text = output.decode()
    print(text)
    assert process.returncode == 0, text
    return text


async def test_urql_queries_mutates_and_streams(server: LiveServer) -> None:
    code, output = await run_peer("urql.mjs", server.url, token_for(f"urql-{uuid.uuid4()}"))
    assert code == 0, output
    assert "ok: mutation and query" in output
    assert "ok: subscription over graphql-ws" in output


async def test_apollo_client_persisted_queries_multipart_and_websocket(
    server: LiveServer,
) -> None:
    token = token_for(f"apollo-{uuid.uuid4()}")
    code, output = await run_peer("apollo-protocols.mjs", server.url, token)
    assert code == 0, output
    assert "ok: automatic persisted queries" in output
    assert "ok: subscription over multipart HTTP" in output
    assert "ok: subscription over graphql-ws" in output


def readme_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"A minimal `graphql-ws` client.*?```js\n(.*?)```", readme, re.DOTALL)
    assert match, "the README has no graphql-ws snippet"
    return match.group(1)


async def test_the_readme_graphql_ws_snippet_runs_as_written(
    server: LiveServer, alice: GraphQLClient
) -> None:
    node = shutil.which("node")
    assert node, "node is not installed"
    created = await alice.data(
        'mutation { createConversation(input: {title: "snippet"}) { conversation { id } } }'
    )
    conversation_id = created["createConversation"]["conversation"]["id"]
    script = PEER / f".readme-snippet-{uuid.uuid4().hex}.mjs"  # in peer/: its packages
    script.write_text(readme_snippet())
    env = {
        **os.environ,
        "TASKCHAT_TOKEN": alice.token or "",
        "CONVERSATION_ID": conversation_id,
        "TASKCHAT_WS_URL": server.ws_url,
    }
    process = await asyncio.create_subprocess_exec(
        node, script.name, cwd=PEER, env=env, stdout=PIPE, stderr=STDOUT
    )
    assert process.stdout is not None
    output = ""
    try:
        # the snippet prints forever: send until a message shows up (the first sends
        # may come before its subscription is live), then stop it
        for attempt in range(10):
            content = f"snippet {attempt}"
            await alice.data(
                "mutation ($c: ID!, $t: String!) { sendMessage(input: "
                "{conversationId: $c, content: $t}) { message { id } } }",
                {"c": conversation_id, "t": content},
            )
            try:
                async with asyncio.timeout(2):
                    while content not in output:
                        line = await process.stdout.readline()
                        if not line:
                            break
                        output += line.decode()
            except TimeoutError:
                continue
            break
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        script.unlink()
    print(output)
    assert "content: 'snippet" in output, output
    assert "role: 'USER'" in output


async def _run_persisted(live: LiveServer, token: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live.url) as http:
        response = await http.post(
            "/graphql", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    payload: dict[str, Any] = response.json()
    assert "errors" not in payload, (body, payload)
    return payload["data"]  # type: ignore[no-any-return]


async def test_relay_compiler_output_runs_as_trusted_documents(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    project = tmp_path / "relay"
    shutil.copytree(PEER / "relay" / "src", project / "src")
    (project / "persisted-queries.json").write_text("{}")
    (project / "relay.config.json").write_text(
        json.dumps(
            {
                "src": "./src",
                "schema": str(ROOT / "schema" / "schema.graphql"),
                "language": "javascript",
                "persistConfig": {"file": "./persisted-queries.json", "algorithm": "SHA256"},
            }
        )
    )
    await run_tool(str(BIN / "relay-compiler"), cwd=project)
    manifest = project / "persisted-queries.json"
    ids = {
        re.search(r"(?:query|mutation|subscription) (\w+)", text).group(1): key  # type: ignore[union-attr]
        for key, text in json.loads(manifest.read_text()).items()
    }
    assert {"TasksListQuery", "TasksListPaginationQuery", "TaskRowRefetchQuery"} <= ids.keys()
    assert "ConversationMessagesPaginationQuery" in ids

    token = token_for(f"relay-{uuid.uuid4()}")
    open_server = await server_factory()  # the same database, any document
    for title in ("one", "two", "three"):
        await open_server.client(token).data(
            "mutation ($t: String!) { createTask(input: {title: $t}) { task { id } } }",
            {"t": title},
        )
    live = await server_factory(trusted_documents=str(manifest))
    first = await _run_persisted(live, token, {"documentId": ids["TasksListQuery"]})
    tasks = first["tasks"]
    assert tasks["totalCount"] == 3
    assert len(tasks["edges"]) == 2
    assert tasks["pageInfo"]["hasNextPage"] is True
    more = await _run_persisted(
        live,
        token,
        {
            "documentId": ids["TasksListPaginationQuery"],
            "variables": {"after": tasks["pageInfo"]["endCursor"], "first": 2},
        },
    )
    assert [e["node"]["title"] for e in more["tasks"]["edges"]] == ["one"]
    newest = tasks["edges"][0]["node"]["id"]
    refetched = await _run_persisted(
        live, token, {"documentId": ids["TaskRowRefetchQuery"], "variables": {"id": newest}}
    )
    assert refetched["node"]["title"] == "three"


async def test_graphql_codegen_types_the_live_schema_and_its_documents_run_trusted(
    server: LiveServer, server_factory: ServerFactory, tmp_path: Path
) -> None:
    out = tmp_path / "gql"
    config = tmp_path / "codegen.json"
    config.write_text(
        json.dumps(
            {
                "schema": f"{server.url}/graphql",  # introspected from the live server
                "documents": [str(PEER / "codegen" / "*.graphql")],
                "generates": {
                    f"{out}/": {"preset": "client", "presetConfig": {"persistedDocuments": True}}
                },
            }
        )
    )
    await run_tool(str(BIN / "graphql-codegen"), "--config", str(config), cwd=PEER)
    types = (out / "graphql.ts").read_text()
    assert "export type TasksQuery = " in types
    assert "export type StreamSubscription = " in types
    assert "sendMessageStream" in types
    documents: dict[str, str] = json.loads((out / "persisted-documents.json").read_text())
    by_name = {
        re.search(r"(?:query|mutation|subscription) (\w+)", text).group(1): key  # type: ignore[union-attr]
        for key, text in documents.items()
    }
    assert {"Tasks", "CreateTask", "Stream"} <= by_name.keys()

    live = await server_factory(trusted_documents=str(out / "persisted-documents.json"))
    token = token_for(f"codegen-{uuid.uuid4()}")
    created = await _run_persisted(
        live, token, {"documentId": by_name["CreateTask"], "variables": {"title": "typed"}}
    )
    assert created["createTask"]["task"]["title"] == "typed"
    sha = by_name["Tasks"].removeprefix("sha256:")
    listed = await _run_persisted(
        live, token, {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha}}}
    )
    assert [e["node"]["title"] for e in listed["tasks"]["edges"]] == ["typed"]
