"""Migrations: upgrade → downgrade → upgrade works, and the models agree with them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from alembic import command
from db.engine import create_engine
from db.models import Base
from main import ROOT
from tests.conftest import BACKENDS, _recreate_pg_database, _worker

EXPECTED_TABLES = {
    "users",
    "conversations",
    "messages",
    "reply_chunks",
    "tasks",
    "agent_runs",
    "task_effects",
    "reply_feedback",
    "alembic_version",
}


def _config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    return config


@pytest.fixture(params=BACKENDS)
async def scratch_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of its own, so downgrading does not disturb other tests."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
    return await _recreate_pg_database(f"taskchat_migrations_{_worker()}")


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _differences(url: str) -> list[object]:
    engine = create_engine(url)

    def compare(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade_round_trips(scratch_url: str) -> None:
    config = _config(scratch_url)
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _tables(scratch_url) == EXPECTED_TABLES
    await asyncio.to_thread(command.downgrade, config, "base")
    assert await _tables(scratch_url) == {"alembic_version"}
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _tables(scratch_url) == EXPECTED_TABLES


@pytest.mark.filterwarnings("ignore::UserWarning")
async def test_models_and_migrations_agree(scratch_url: str) -> None:
    await asyncio.to_thread(command.upgrade, _config(scratch_url), "head")
    assert await _differences(scratch_url) == []


async def test_downgrading_past_packed_reply_chunks_keeps_every_entry(scratch_url: str) -> None:
    """0007 packs consecutive pieces into one row; its downgrade gives each piece its
    row back (PostgreSQL; SQLite keeps streams in memory and has no packed rows)."""
    from sqlalchemy import text

    from db.engine import create_session_factory
    from db.models import ReplyChunk
    from tests.live.test_reply_journal import streaming_reply

    config = _config(scratch_url)
    await asyncio.to_thread(command.upgrade, config, "head")
    engine = create_engine(scratch_url)
    postgres = engine.dialect.name == "postgresql"
    try:
        reply = await streaming_reply(create_session_factory(engine))
        async with create_session_factory(engine)() as session, session.begin():
            session.add(ReplyChunk(message_id=reply.id, sequence=1, text_offset=0, text="Hi "))
            if postgres:
                session.add_all(
                    [
                        ReplyChunk(
                            message_id=reply.id,
                            sequence=2,
                            text_offset=3,
                            text="",
                            tool_call={"id": "call_1"},
                        ),
                        ReplyChunk(
                            message_id=reply.id,
                            sequence=5,
                            text_offset=3,
                            text="naïve 🎉 end",
                            pieces=[6, 2, 3],
                        ),
                    ]
                )
        await engine.dispose()
        await asyncio.to_thread(command.downgrade, config, "0006_listed_messages_index")
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text(
                        "SELECT sequence, text_offset, text, tool_call IS NOT NULL"
                        " FROM reply_chunks ORDER BY sequence"
                    )
                )
            ).all()
        expected = [(1, 0, "Hi ", False)]
        if postgres:
            expected += [(2, 3, "", True), (3, 3, "naïve ", False), (4, 9, "🎉 ", False)]
            expected += [(5, 11, "end", False)]
        assert [tuple(row) for row in rows] == expected
    finally:
        await engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
