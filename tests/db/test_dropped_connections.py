"""Pooled connections are not pinged before use: one the server dropped (a restart,
Neon's idle timeout, a network blip) costs a retried read, not a failed request."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import ServerFactory, token_for


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_read_on_a_dropped_connection_is_retried(
    server_factory: ServerFactory, database_urls: dict[str, str]
) -> None:
    # a server of its own, named, so that only its connections are dropped
    name = f"dropped-{uuid.uuid4().hex[:12]}"
    url = make_url(database_urls["postgres"])
    named = url.update_query_dict({"application_name": name}).render_as_string(hide_password=False)
    server = await server_factory(database_url=named, database_direct_url=named)
    client = server.client(token_for(f"user-{uuid.uuid4()}"))
    query = "{ conversations { totalCount } tasks { totalCount } }"
    assert await client.data(query)  # the pool now holds a connection
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        terminated = await admin.fetchval(
            """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE application_name = $1""",
            name,
        )
    finally:
        await admin.close()
    assert terminated >= 1
    for _ in range(3):
        data = await client.data(query)
        assert data["conversations"]["totalCount"] == 0
