"""Many instances starting at once on a fresh database: their migrations take turns
(an advisory lock around the upgrade) instead of racing to create the same tables."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
from sqlalchemy.engine import make_url

from db.locks import MIGRATION_LOCK_KEY
from tests.conftest import ROOT, _recreate_pg_database, _worker
from tests.live.test_websocket import eventually

INSTANCES = 3


async def _migrate(database_url: str) -> tuple[int, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": database_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "main.py",
        "migrate",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_migrations_started_at_once_wait_for_each_other() -> None:
    """The test holds the upgrade's lock while the instances start, so all of them
    are waiting for it at the same moment (which they would not be without the lock);
    released, they all succeed and the database is migrated once."""
    database_url = await _recreate_pg_database(f"taskchat_race_{_worker()}")
    url = make_url(database_url)
    holder = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        migrations = [asyncio.create_task(_migrate(database_url)) for _ in range(INSTANCES)]

        async def all_waiting() -> bool:
            waiting: int = await holder.fetchval(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                " WHERE d.datname = current_database() AND l.locktype = 'advisory'"
                " AND NOT l.granted"
            )
            return waiting == INSTANCES

        await eventually(all_waiting, timeout=60)
        assert await holder.fetchval("SELECT to_regclass('alembic_version')") is None
        await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)

        for code, output in await asyncio.gather(*migrations):
            assert (code, output) == (0, "migrations applied\n")
        versions = await holder.fetch("SELECT version_num FROM alembic_version")
        tables = await holder.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await holder.close()
    assert len(versions) == 1
    assert tables == 9  # eight tables and alembic_version
