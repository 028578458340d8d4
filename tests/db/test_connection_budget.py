"""An instance opens at most `4 * DB_POOL_SIZE + max(2, DB_POOL_SIZE // 2) + 1`
connections, however many turns run at once: requests and turns past that wait for one
of its pooled connections instead of PostgreSQL refusing them ("too many clients"), which
answered SERVICE_UNAVAILABLE to whole bursts once two instances shared a default server
(100 connections) and each could open 183."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import uuid

import asyncpg

from tests.agent.test_turn_races import send
from tests.conftest import ServerFactory, token_for

POOL_SIZE = 2
BUDGET = 4 * POOL_SIZE + max(2, POOL_SIZE // 2) + 1
TURNS = 40


async def _sample_connections(
    dsn: str, database: str, since: datetime.datetime, peak: list[int]
) -> None:
    """Connections to the test's database opened since the server started (this
    worker's shared servers keep theirs)."""
    sampler = await asyncpg.connect(dsn)
    try:
        while True:
            count = await sampler.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_start >= $2",
                database,
                since,
            )
            peak.append(int(count))
            await asyncio.sleep(0.005)
    finally:
        await sampler.close()


async def test_a_burst_of_turns_stays_within_the_connection_budget(
    server_factory: ServerFactory, backend: str, database_urls: dict[str, str]
) -> None:
    since = datetime.datetime.now(datetime.UTC)
    live = await server_factory(db_pool_size=POOL_SIZE)
    clients = [live.client(token_for(f"budget-{uuid.uuid4()}")) for _ in range(TURNS // 4)]
    peak: list[int] = []
    sampling = None
    if backend == "postgres":
        url = database_urls["postgres"].replace("postgresql+asyncpg://", "postgresql://")
        database = url.rsplit("/", 1)[1]
        sampling = asyncio.create_task(_sample_connections(url, database, since, peak))
        await asyncio.sleep(0.05)
    try:
        results = await asyncio.gather(
            *(send(clients[n % len(clients)], f"add task: item {n}") for n in range(TURNS))
        )
    finally:
        if sampling is not None:
            sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampling
    assert [result.get("errors") for result in results] == [None] * TURNS
    if backend == "postgres":
        assert peak
        assert max(peak) <= BUDGET, (max(peak), BUDGET)
