"""The connection string as Neon's console prints it, over real TLS: a throwaway cluster
with a self-signed certificate that refuses every connection without TLS, reached by the
real app (migrations, a query, a turn, the LISTEN connection)."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from live.broker import LISTEN_APPLICATION_NAME
from main import run_migrations
from tests.conftest import make_settings, start_server, token_for
from tests.live.test_websocket import SEND_MESSAGE, create_conversation, eventually
from tests.pgtools import TlsCluster, tls_cluster


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[TlsCluster]:
    async with tls_cluster() as started:
        yield started


async def _listen_over_tls(cluster: TlsCluster) -> int:
    connection = await asyncpg.connect(
        host=str(cluster.socket_dir), port=cluster.port, user="postgres", database="postgres"
    )
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
            " WHERE a.application_name = $1 AND s.ssl",
            LISTEN_APPLICATION_NAME,
        )
        return count
    finally:
        await connection.close()


async def test_the_cluster_refuses_connections_without_tls(cluster: TlsCluster) -> None:
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        await asyncpg.connect(cluster.url(query="sslmode=disable"))


async def test_neon_console_url_pasted_as_is_serves_over_tls(cluster: TlsCluster) -> None:
    url = cluster.url("postgresql", "sslmode=require&channel_binding=require")
    settings = make_settings(url)
    assert any("channel_binding" in note for note in settings.database.notes)
    await asyncio.to_thread(run_migrations, settings.direct_database)

    live = await start_server(settings)
    try:
        client = live.client(token_for(f"tls-{uuid.uuid4()}"))
        assert (await client.data("{ me { id } }"))["me"]["id"]
        conversation_id = await create_conversation(client)
        data = await client.data(
            SEND_MESSAGE,
            {"input": {"conversationId": conversation_id, "content": "add a task to buy milk"}},
        )
        assert data["sendMessage"]["message"]["content"] == 'Added "buy milk" to your tasks.'

        async def listening() -> bool:
            return await _listen_over_tls(cluster) == 1

        await eventually(listening)
    finally:
        await live.stop()


@pytest.mark.parametrize("scheme", ["postgres", "postgresql+asyncpg"])
async def test_other_schemes_and_a_verified_certificate(cluster: TlsCluster, scheme: str) -> None:
    """`verify-full` with the certificate as `sslrootcert`: the parameters asyncpg knows
    reach it; the migrations (already at head) run over the verified connection."""
    url = cluster.url(scheme, f"sslmode=verify-full&sslrootcert={cluster.certificate}")
    settings = make_settings(url)
    await asyncio.to_thread(run_migrations, settings.direct_database)
    live = await start_server(settings)
    try:
        client = live.client(token_for(f"tls-{uuid.uuid4()}"))
        assert (await client.data("{ me { id } }"))["me"]["id"]
    finally:
        await live.stop()


async def test_system_trust_store_refuses_a_self_signed_certificate(cluster: TlsCluster) -> None:
    """libpq 16's `sslrootcert=system`: the system's authorities, which do not know our
    self-signed certificate (so the verification is real)."""
    settings = make_settings(cluster.url(query="sslmode=verify-full&sslrootcert=system"))
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.to_thread(run_migrations, settings.direct_database)
