"""DATABASE_URL through a real PgBouncer in transaction mode (as Neon's `-pooler` host,
Supabase and most hosted PostgreSQL put in front), DATABASE_DIRECT_URL for what a
transaction pooler cannot carry (migrations, LISTEN, the turn locks).

PgBouncer logs in to PostgreSQL as a role of its own, so `pg_stat_activity.usename`
tells pooled connections (that role) from direct ones (`postgres`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from live.broker import LISTEN_APPLICATION_NAME
from main import run_migrations
from tests.conftest import (
    GraphQLClient,
    _recreate_pg_database,
    _worker,
    make_settings,
    start_server,
    token_for,
)
from tests.live.test_two_instances import serve_process
from tests.live.test_websocket import (
    MESSAGE_ADDED,
    SEND_MESSAGE,
    create_conversation,
    eventually,
    next_data,
    wait_until_live,
)
from tests.live.ws_client import bearer, connect
from tests.pgtools import PgBouncer, pgbouncer


@dataclass(frozen=True)
class Pooled:
    direct_url: str
    pooled_url: str
    bouncer: PgBouncer

    @property
    def database(self) -> str:
        return str(make_url(self.direct_url).database)


@pytest.fixture(scope="module")
async def pooled() -> AsyncIterator[Pooled]:
    direct_url = await _recreate_pg_database(f"taskchat_pooler_{_worker()}")
    await asyncio.to_thread(run_migrations, direct_url)
    async with pgbouncer(direct_url) as bouncer:
        yield Pooled(direct_url, bouncer.url(direct_url), bouncer)


async def _backends(pooled: Pooled) -> list[tuple[str, str]]:
    """(user, application name) of every other backend on the test database."""
    url = make_url(pooled.direct_url)
    connection = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        rows = await connection.fetch(
            "SELECT usename, application_name FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    return [(row["usename"], row["application_name"]) for row in rows]


async def _listeners(pooled: Pooled) -> list[str]:
    backends = await _backends(pooled)
    return [user for user, application in backends if application == LISTEN_APPLICATION_NAME]


async def _eventually_listening(pooled: Pooled, instances: int) -> None:
    """One LISTEN connection per instance, every one of them direct (user `postgres`)."""

    async def direct() -> bool:
        return await _listeners(pooled) == ["postgres"] * instances

    await eventually(direct, timeout=15)


async def test_queries_and_turns_through_a_transaction_pooler(pooled: Pooled) -> None:
    before = await pooled.bouncer.stats(pooled.database)
    live = await start_server(
        make_settings(pooled.pooled_url, database_direct_url=pooled.direct_url)
    )
    try:
        client = live.client(token_for(f"pooled-{uuid.uuid4()}"))
        conversation_id = await create_conversation(client)
        for n in range(4):
            data = await client.data(
                SEND_MESSAGE,
                {"input": {"conversationId": conversation_id, "content": f"add task: item {n}"}},
            )
            assert data["sendMessage"]["message"]["content"] == f'Added "item {n}" to your tasks.'
        # the same statements, many at once: the pool's connections are spread over
        # PgBouncer's server connections, where a reused statement name would clash
        pages = await asyncio.gather(
            *(client.data("{ tasks(first: 10) { totalCount } }") for _ in range(20))
        )
        assert {page["tasks"]["totalCount"] for page in pages} == {4}

        after = await pooled.bouncer.stats(pooled.database)
        assert after["total_xact_count"] - before["total_xact_count"] >= 20 + 4 * 2
        users = {user for user, _ in await _backends(pooled)}
        assert pooled.bouncer.server_role in users
        await _eventually_listening(pooled, instances=1)
    finally:
        await live.stop()


async def test_two_instances_through_the_pooler_serialise_sends_and_fan_out(
    pooled: Pooled, tmp_path: Path
) -> None:
    token = token_for(f"pooled-two-{uuid.uuid4()}")
    # small pools: the test PostgreSQL's connection limit is shared by every test worker
    direct = {"database_direct_url": pooled.direct_url, "db_pool_size": "3"}
    async with (
        serve_process(pooled.pooled_url, tmp_path / "a.log", **direct) as url_a,
        serve_process(pooled.pooled_url, tmp_path / "b.log", **direct) as url_b,
        httpx.AsyncClient(base_url=url_a, timeout=30) as http_a,
        httpx.AsyncClient(base_url=url_b, timeout=30) as http_b,
    ):
        client_a, client_b = GraphQLClient(http_a, token), GraphQLClient(http_b, token)
        conversation_id = await create_conversation(client_a)

        # fan-out: a subscriber on A sees what B stores
        ws_url_a = url_a.replace("http://", "ws://") + "/graphql"
        async with connect(ws_url_a, bearer(token)) as ws:
            await ws.subscribe("1", MESSAGE_ADDED, {"conversationId": conversation_id})
            await wait_until_live(ws, "1", client_b, conversation_id)
            data = await client_b.data(
                SEND_MESSAGE,
                {"input": {"conversationId": conversation_id, "content": "list my tasks"}},
            )
            question = next_data(await ws.next_message(timeout=5), "1")["messageAdded"]
            reply = next_data(await ws.next_message(timeout=5), "1")["messageAdded"]
        assert question == data["sendMessage"]["userMessage"]
        assert reply == data["sendMessage"]["message"]

        # serialised: concurrent sends through both come out question, answer, …
        conversation_id = await create_conversation(client_b)
        await asyncio.gather(
            *(
                (client_a if n % 2 else client_b).data(
                    SEND_MESSAGE,
                    {"input": {"conversationId": conversation_id, "content": f"add task: t{n}"}},
                )
                for n in range(6)
            )
        )
        history = await client_b.data(
            "query($id: ID!) { conversation(id: $id) { messages(first: 100) {"
            " edges { node { role content } } } } }",
            {"id": conversation_id},
        )
        messages = [e["node"] for e in history["conversation"]["messages"]["edges"]]
        assert [m["role"] for m in messages] == ["USER", "ASSISTANT"] * 6
        for question_row, answer in zip(messages[::2], messages[1::2], strict=True):
            item = question_row["content"].removeprefix("add task: ")
            assert answer["content"] == f'Added "{item}" to your tasks.'

        # both LISTEN connections are direct
        await _eventually_listening(pooled, instances=2)
