"""Turn locks on PostgreSQL: a wait that runs out is AGENT_TIMEOUT, told by its SQLSTATE."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from core.errors import AgentTimeout
from db.engine import create_engine
from db.locks import PostgresTurnLocks


async def test_a_turn_lock_wait_that_runs_out_is_agent_timeout(
    database_urls: dict[str, str],
) -> None:
    engine = create_engine(database_urls["postgres"], pool_size=2)
    locks = PostgresTurnLocks(engine, wait_seconds=0.2)
    conversation_id = uuid.uuid4()
    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold(conversation_id):
            held.set()
            await release.wait()

    task = asyncio.create_task(holder())
    try:
        await held.wait()
        with pytest.raises(AgentTimeout):
            async with locks.hold(conversation_id):
                pass
        # another conversation is not blocked by it
        async with locks.hold(uuid.uuid4()):
            pass
    finally:
        release.set()
        await task
        await engine.dispose()
