"""The pool keeps the connections a burst opened instead of closing each one as it is
returned: on PostgreSQL a new connection is a TLS handshake and a forked backend, and
closing the surplus at every return meant a busy worker opened one for most requests.
Connections above the pool size are closed once they have been idle for a while."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import text

from db.engine import close_idle_connections, create_engine

BURST = 5


async def _burst_pids(engine: object) -> set[int]:
    """`BURST` connections held at once; the backend pid of each."""
    opened = asyncio.Event()
    pids: list[int] = []

    async def hold() -> None:
        async with engine.connect() as connection:  # type: ignore[attr-defined]
            pids.append(int(await connection.scalar(text("SELECT pg_backend_pid()"))))
            await connection.rollback()
            if len(pids) == BURST:
                opened.set()
            await opened.wait()

    await asyncio.gather(*(hold() for _ in range(BURST)))
    return set(pids)


async def test_a_burst_reuses_the_connections_of_the_last_one(
    database_urls: dict[str, str],
) -> None:
    engine = create_engine(database_urls["postgres"], pool_size=2, max_overflow=4)
    try:
        first = await _burst_pids(engine)
        second = await _burst_pids(engine)
    finally:
        await engine.dispose()
    assert len(first) == BURST
    assert second == first  # no connection was closed and opened again


async def test_idle_connections_above_the_pool_size_are_closed(
    database_urls: dict[str, str],
) -> None:
    engine = create_engine(
        database_urls["postgres"], pool_size=2, max_overflow=4, pool_idle_seconds=0.2
    )
    try:
        await _burst_pids(engine)
        assert engine.pool.checkedin() == BURST  # type: ignore[attr-defined]
        await asyncio.sleep(0.4)
        async with engine.connect() as connection:  # the next checkout trims the rest
            await connection.scalar(text("SELECT 1"))
            await connection.rollback()
        kept = engine.pool.checkedin()  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
    assert kept == 2


async def test_an_idle_instance_gives_its_surplus_back(database_urls: dict[str, str]) -> None:
    """No checkout comes after the burst: the application's trimming task closes them."""
    engine = create_engine(
        database_urls["postgres"], pool_size=2, max_overflow=4, pool_idle_seconds=0.2
    )
    trimming = asyncio.create_task(close_idle_connections(engine))
    try:
        await _burst_pids(engine)
        await asyncio.sleep(0.6)
        kept = engine.pool.checkedin()  # type: ignore[attr-defined]
    finally:
        trimming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trimming
        await engine.dispose()
    assert kept == 2
