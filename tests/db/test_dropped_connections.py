"""Pooled connections are not pinged before use: one the server dropped (a restart,
Neon's idle timeout, a network blip) costs a retried read, not a failed request."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import LiveServer, token_for


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_read_on_a_dropped_connection_is_retried(server: LiveServer) -> None:
    client = server.client(token_for(f"user-{uuid.uuid4()}"))
    query = "{ conversations { totalCount } tasks { totalCount } }"
    assert await client.data(query)  # the pool now holds a connection
    url = make_url(server.settings.database_url)
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        terminated = await admin.fetchval(
            """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE datname = $1 AND pid <> pg_backend_pid()
                 AND application_name <> 'taskchat-listen'""",
            url.database,
        )
    finally:
        await admin.close()
    assert terminated >= 1
    for _ in range(3):
        data = await client.data(query)
        assert data["conversations"]["totalCount"] == 0
