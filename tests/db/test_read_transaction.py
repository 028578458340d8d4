"""Reads that need no common snapshot run in autocommit on direct PostgreSQL (no BEGIN
and COMMIT round trips), in a transaction behind a pooler."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from db.engine import create_engine, create_session_factory
from db.transactions import read_transaction

_XACT = text("SELECT pg_current_xact_id()::text")


@pytest.mark.parametrize("pooled", [False, True])
async def test_reads_begin_no_transaction_on_direct_postgres(
    database_urls: dict[str, str], pooled: bool
) -> None:
    engine = create_engine(database_urls["postgres"], pool_size=1, pooled=pooled)
    try:
        factory = create_session_factory(engine)
        for _ in range(2):  # the connection goes back to the pool as it came
            async with factory() as session, read_transaction(session):
                first = await session.scalar(_XACT)
                second = await session.scalar(_XACT)
            # autocommit: each statement a transaction of its own
            assert (first != second) is (not pooled)
        async with factory() as session, session.begin():
            # a session's own transaction afterwards is one transaction again
            assert await session.scalar(_XACT) == await session.scalar(_XACT)
    finally:
        await engine.dispose()


async def test_reads_on_sqlite(database_urls: dict[str, str]) -> None:
    engine = create_engine(database_urls["sqlite"])
    try:
        async with create_session_factory(engine)() as session, read_transaction(session):
            assert await session.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()
