"""Fan-out across instances over PostgreSQL LISTEN/NOTIFY: two real server processes on
one database, and a broker that loses its LISTEN connection."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import (
    ROOT,
    TEST_SECRET,
    GraphQLClient,
    LiveServer,
    make_settings,
    start_server,
    token_for,
)
from tests.live.test_websocket import (
    MESSAGE_ADDED,
    SEND_MESSAGE,
    create_conversation,
    eventually,
    next_data,
    wait_until_live,
)
from tests.live.ws_client import bearer, connect
from tests.pgtools import asyncpg_dsn

PYTHON = ROOT / ".venv" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def serve_process(database_url: str, log_path: Path, **settings: str) -> AsyncIterator[str]:
    """`python main.py serve` in a child process; yields its base URL once /health is 200."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": database_url,
        "JWT_SECRET": TEST_SECRET,
        "ENVIRONMENT": "test",
        "AGENT_PROVIDER": "offline",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "RATE_LIMIT_PER_MINUTE": "1000",
        **{name.upper(): value for name, value in settings.items()},
    }
    python = str(PYTHON if PYTHON.exists() else Path(sys.executable))
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [python, "main.py", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"server exited early:\n{log_path.read_text()}")
                try:
                    if (await http.get(f"{url}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"server never became healthy:\n{log_path.read_text()}")
                await asyncio.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 10)


async def test_message_stored_on_one_instance_reaches_a_subscriber_on_another(
    database_urls: dict[str, str], tmp_path: Path
) -> None:
    database_url = database_urls["postgres"]
    token = token_for(f"two-{uuid.uuid4()}")
    async with (
        serve_process(database_url, tmp_path / "a.log") as url_a,
        serve_process(database_url, tmp_path / "b.log") as url_b,
        httpx.AsyncClient(base_url=url_b, timeout=10) as http_b,
    ):
        client_b = GraphQLClient(http_b, token)
        conversation_id = await create_conversation(client_b)
        ws_url_a = url_a.replace("http://", "ws://") + "/graphql"
        async with connect(ws_url_a, bearer(token)) as ws:
            assert ws.acknowledged
            await ws.subscribe("1", MESSAGE_ADDED, {"conversationId": conversation_id})
            await wait_until_live(ws, "1", client_b, conversation_id)

            # read while the request is in flight: the question is published before
            # the reply is generated, so it can arrive before the response does
            sent_at = time.perf_counter()
            send = asyncio.create_task(
                client_b.data(
                    SEND_MESSAGE,
                    {"input": {"conversationId": conversation_id, "content": "list my tasks"}},
                )
            )
            answered: list[float] = []
            send.add_done_callback(lambda _: answered.append(time.perf_counter()))
            question = next_data(await ws.next_message(timeout=1.0), "1")["messageAdded"]
            question_at = time.perf_counter()
            reply = next_data(await ws.next_message(timeout=1.0), "1")["messageAdded"]
            reply_at = time.perf_counter()
            data = await send

    assert question == data["sendMessage"]["userMessage"]
    assert reply == data["sendMessage"]["message"]
    assert (question["role"], reply["role"]) == ("USER", "ASSISTANT")

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:+.1f} ms"

    (answered_at,) = answered
    print(
        "\ncross-instance messageAdded latency (relative to the sendMessage response on B,"
        f" which took {ms(answered_at - sent_at)[1:]}): USER on A {ms(question_at - answered_at)},"
        f" ASSISTANT on A {ms(reply_at - answered_at)}"
    )


async def listen_backend_pids(database_url: str) -> set[int]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    return {row["pid"] for row in rows}


async def terminate_backends(database_url: str, pids: set[int]) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for pid in pids:
            assert await connection.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await connection.close()


@pytest.fixture
async def postgres_server(database_urls: dict[str, str]) -> AsyncIterator[LiveServer]:
    live = await start_server(make_settings(database_urls["postgres"]))
    try:
        yield live
    finally:
        await live.stop()


async def test_subscriber_gets_messages_after_the_listen_connection_is_killed(
    postgres_server: LiveServer, database_urls: dict[str, str]
) -> None:
    database_url = database_urls["postgres"]
    token = token_for(f"reconnect-{uuid.uuid4()}")
    client = postgres_server.client(token)
    conversation_id = await create_conversation(client)
    async with connect(postgres_server.ws_url, bearer(token)) as ws:
        await ws.subscribe("1", MESSAGE_ADDED, {"conversationId": conversation_id})
        await wait_until_live(ws, "1", client, conversation_id)
        killed = await listen_backend_pids(database_url)
        assert killed, "no LISTEN connection found"

        await terminate_backends(database_url, killed)
        data = await client.data(
            SEND_MESSAGE,
            {"input": {"conversationId": conversation_id, "content": "list my tasks"}},
        )

        question = next_data(await ws.next_message(timeout=5), "1")["messageAdded"]
        reply = next_data(await ws.next_message(timeout=5), "1")["messageAdded"]
        assert question == data["sendMessage"]["userMessage"]
        assert reply == data["sendMessage"]["message"]

        async def listening_again() -> bool:
            return bool(await listen_backend_pids(database_url) - killed)

        await eventually(listening_again)
        # and live notifications flow over the new connection
        data = await client.data(
            SEND_MESSAGE,
            {"input": {"conversationId": conversation_id, "content": "show my pending tasks"}},
        )
        delivered = [
            next_data(await ws.next_message(timeout=5), "1")["messageAdded"] for _ in range(2)
        ]
        assert delivered == [data["sendMessage"]["userMessage"], data["sendMessage"]["message"]]


async def test_two_processes_share_the_rate_limit_and_the_turn_lock(
    database_urls: dict[str, str], tmp_path: Path
) -> None:
    """Two instances on one database: concurrent sends to one conversation through both
    still come out question, answer, question, answer, and the per-user rate limit is
    counted across both."""
    database_url = database_urls["postgres"]
    token = token_for(f"two-{uuid.uuid4()}")
    async with (
        serve_process(database_url, tmp_path / "a.log", rate_limit_per_minute="8") as url_a,
        serve_process(database_url, tmp_path / "b.log", rate_limit_per_minute="8") as url_b,
        httpx.AsyncClient(base_url=url_a, timeout=30) as http_a,
        httpx.AsyncClient(base_url=url_b, timeout=30) as http_b,
    ):
        client_a, client_b = GraphQLClient(http_a, token), GraphQLClient(http_b, token)
        conversation_id = await create_conversation(client_a)
        sends = [
            (client_a if n % 2 else client_b).data(
                SEND_MESSAGE,
                {"input": {"conversationId": conversation_id, "content": f"add task: item {n}"}},
            )
            for n in range(8)
        ]
        await asyncio.gather(*sends)
        history = await client_b.data(
            "query($id: ID!) { conversation(id: $id) { messages(first: 100) {"
            " edges { node { role content } } } } }",
            {"id": conversation_id},
        )
        messages = [e["node"] for e in history["conversation"]["messages"]["edges"]]
        assert [m["role"] for m in messages] == ["USER", "ASSISTANT"] * 8
        for question, answer in zip(messages[::2], messages[1::2], strict=True):
            item = question["content"].removeprefix("add task: ")
            assert f'"{item}"' in answer["content"]

        # 8 turns a minute across both instances: the 9th is refused by either
        for client in (client_a, client_b):
            payload = await client.execute(
                SEND_MESSAGE,
                {"input": {"conversationId": conversation_id, "content": "add task: one more"}},
            )
            assert payload["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def _listen_backends(database_url: str) -> int:
    url = make_url(database_url)
    connection = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        return count
    finally:
        await connection.close()


async def test_one_listen_connection_per_instance_whatever_the_subscribers(
    database_urls: dict[str, str],
) -> None:
    database_url = database_urls["postgres"]
    before = await _listen_backends(database_url)
    live = await start_server(make_settings(database_url))
    try:
        token = token_for(f"listen-{uuid.uuid4()}")
        client = live.client(token)
        conversations = [await create_conversation(client) for _ in range(5)]
        async with connect(live.ws_url, bearer(token)) as ws:
            for index, conversation_id in enumerate(conversations):
                await ws.subscribe(str(index), MESSAGE_ADDED, {"conversationId": conversation_id})
            await wait_until_live(ws, "0", client, conversations[0])
            assert await _listen_backends(database_url) == before + 1
    finally:
        await live.stop()
