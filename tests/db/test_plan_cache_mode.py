"""Direct PostgreSQL connections plan every execution of a prepared statement for its
values: a generic plan, made for an average conversation, sorts all the messages of a
large one to return a page."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from db.engine import create_engine


@pytest.mark.parametrize("pooled", [False, True])
async def test_direct_connections_plan_each_execution(
    database_urls: dict[str, str], pooled: bool
) -> None:
    engine = create_engine(database_urls["postgres"], pool_size=1, pooled=pooled)
    try:
        for _ in range(3):  # the setting outlives the transactions of the connection
            async with engine.connect() as connection:
                mode = await connection.scalar(text("SHOW plan_cache_mode"))
                await connection.rollback()
    finally:
        await engine.dispose()
    # behind a transaction pooler no statement is reused: nothing to set, nothing kept
    assert mode == ("auto" if pooled else "force_custom_plan")
