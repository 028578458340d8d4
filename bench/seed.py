"""The benchmark's data: taskchat's own tables at a realistic scale, set-based.

The database is migrated with the project's alembic migrations (`main.py migrate`), then
filled with `INSERT … SELECT generate_series` in one transaction (foreign-key triggers
off: the rows are consistent by construction), then `VACUUM ANALYZE`d. A seed is kept
and reused while its signature (this file and the scale) is unchanged: `bench_seed`
records it.

Who is who (subjects `bench-user-<n>`):
- user 1: the S1 user — `s1_conversations` live ACTIVE conversations, plus archived and
  soft-deleted ones mixed in;
- user 2: the S2 user — `big_conversations` conversations of `big_messages` messages;
- every other user: the rest of the conversations, 7–27 messages each; every 10th is
  ARCHIVED, every 23rd soft-deleted (its messages too), every 29th message soft-deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Scale:
    users: int
    conversations: int
    s1_conversations: int
    big_conversations: int
    big_messages: int

    @property
    def small_conversations(self) -> int:
        # user 1 has s1 live + 10% archived + 10% deleted; user 2 the big ones
        return self.conversations - self.s1_total - self.big_conversations

    @property
    def s1_total(self) -> int:
        return self.s1_conversations + 2 * (self.s1_conversations // 10)


FULL = Scale(
    users=1_000,
    conversations=50_000,
    s1_conversations=200,
    big_conversations=2,
    big_messages=100_000,
)
SMOKE = Scale(
    users=240, conversations=3_000, s1_conversations=200, big_conversations=1, big_messages=2_000
)


def signature(scale: Scale) -> str:
    source = Path(__file__).read_bytes()
    return hashlib.sha256(source + json.dumps(asdict(scale)).encode()).hexdigest()[:16]


SEED_SQL = """
SET LOCAL session_replication_role = replica;
SET LOCAL synchronous_commit = off;

INSERT INTO users (id, subject, created_at)
SELECT md5('bench-user-' || i)::uuid, 'bench-user-' || i, timestamptz '2024-01-01 00:00:00+00'
FROM generate_series(1, {users}) AS i;

CREATE TEMP TABLE plan ON COMMIT DROP AS
-- user 1: live ACTIVE, then archived, then soft-deleted
SELECT md5('bench-c1-' || g)::uuid AS id, md5('bench-user-1')::uuid AS user_id,
       'S1 conversation ' || g AS title,
       CASE WHEN g > {s1} AND g <= {s1} + {s1} / 10 THEN 'ARCHIVED' ELSE 'ACTIVE' END AS status,
       5 + g % 20 AS n,
       timestamptz '2024-02-01 00:00:00+00' + g * interval '7 minutes' AS created_at,
       CASE WHEN g > {s1} + {s1} / 10 THEN timestamptz '2024-06-01 00:00:00+00' END AS deleted_at
FROM generate_series(1, {s1_total}) AS g
UNION ALL
-- user 2: the long conversations of S2
SELECT md5('bench-big-' || g)::uuid, md5('bench-user-2')::uuid, 'Long conversation ' || g,
       'ACTIVE', {big_messages}, timestamptz '2023-01-01 00:00:00+00' + g * interval '1 day', NULL
FROM generate_series(1, {big}) AS g
UNION ALL
-- everyone else
SELECT md5('bench-c-' || g)::uuid, md5('bench-user-' || (3 + (g - 1) % ({users} - 2)))::uuid,
       'Conversation ' || g || ' about ' || (ARRAY['groceries', 'the trip', 'taxes', 'work',
       'the garden', 'birthdays'])[1 + g % 6],
       CASE WHEN g % 10 = 0 THEN 'ARCHIVED' ELSE 'ACTIVE' END,
       7 + g % 21,
       timestamptz '2024-01-02 00:00:00+00' + g * interval '3 minutes',
       CASE WHEN g % 23 = 0 THEN timestamptz '2024-06-01 00:00:00+00' END
FROM generate_series(1, {small}) AS g;

INSERT INTO conversations (id, user_id, title, status, metadata, last_seq, created_at,
                           updated_at, deleted_at)
SELECT id, user_id, title, status, '{{}}'::jsonb, n, created_at,
       created_at + n * interval '37 seconds', deleted_at
FROM plan;

INSERT INTO messages (id, conversation_id, user_id, seq, role, status, content, tool_calls,
                      parent_id, client_message_id, metadata, created_at, deleted_at)
SELECT gen_random_uuid(), p.id, p.user_id, s,
       CASE WHEN s % 2 = 1 THEN 'USER' ELSE 'ASSISTANT' END, 'COMPLETED',
       'message #' || s || ' of ' || p.title || ': '
         || substr(repeat('remind me to buy milk and call the plumber tomorrow ', 5), 1,
                   20 + (s * 37) % 200),
       '[]'::jsonb, NULL, NULL, '{{}}'::jsonb,
       p.created_at + s * interval '37 seconds',
       COALESCE(p.deleted_at,
                CASE WHEN s % 29 = 0 THEN timestamptz '2024-06-02 00:00:00+00' END)
FROM plan AS p, generate_series(1, p.n) AS s;

INSERT INTO tasks (id, user_id, title, description, status, created_at, updated_at,
                   completed_at)
SELECT gen_random_uuid(), md5('bench-user-' || u)::uuid, 'task ' || t || ' of user ' || u,
       NULL, CASE WHEN t % 3 = 0 THEN 'COMPLETED' ELSE 'PENDING' END,
       timestamptz '2024-03-01 00:00:00+00' + t * interval '1 hour',
       timestamptz '2024-03-01 00:00:00+00' + t * interval '1 hour',
       CASE WHEN t % 3 = 0 THEN timestamptz '2024-03-05 00:00:00+00' END
FROM generate_series(1, {users}) AS u, generate_series(1, 10) AS t;

CREATE TABLE bench_seed (key text PRIMARY KEY, value jsonb NOT NULL);
"""


def admin_dsn(database: str = "postgres") -> str:
    base = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
    return f"{base.rstrip('/')}/{database}"


def server_url(database: str, port: int | None = None) -> str:
    """The SQLAlchemy URL of the bench database (optionally through another port)."""
    dsn = admin_dsn(database)
    if port is not None:
        dsn = dsn.replace(":5432/", f":{port}/")
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


async def _facts(connection: asyncpg.Connection, scale: Scale) -> dict[str, Any]:
    big = await connection.fetch(
        "SELECT id::text FROM conversations WHERE user_id = md5('bench-user-2')::uuid ORDER BY title"
    )
    return {"scale": asdict(scale), "big_conversations": [row["id"] for row in big]}


async def ensure_seed(database: str, scale: Scale, log: Any = print) -> dict[str, Any]:
    """The seeded database's facts; seeds it first unless a seed with this signature is
    there. Migrations run either way (a reused seed gets new migrations)."""
    wanted = signature(scale)
    admin = await asyncpg.connect(admin_dsn())
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
    finally:
        await admin.close()
    if exists:
        connection = await asyncpg.connect(admin_dsn(database))
        try:
            found = await connection.fetchval(
                "SELECT value->>'signature' FROM bench_seed WHERE key = 'seed'"
            )
        except asyncpg.UndefinedTableError:
            found = None
        finally:
            await connection.close()
        if found == wanted:
            migrate(database)
            connection = await asyncpg.connect(admin_dsn(database))
            try:
                facts = json.loads(
                    await connection.fetchval("SELECT value FROM bench_seed WHERE key = 'facts'")
                )
            finally:
                await connection.close()
            log(f"seed: reusing {database} (signature {wanted})")
            return dict(facts)
    started = time.perf_counter()
    log(f"seed: creating {database} at {asdict(scale)}")
    admin = await asyncpg.connect(admin_dsn())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    migrate(database)
    connection = await asyncpg.connect(admin_dsn(database))
    try:
        sql = SEED_SQL.format(
            users=scale.users,
            s1=scale.s1_conversations,
            s1_total=scale.s1_total,
            big=scale.big_conversations,
            big_messages=scale.big_messages,
            small=scale.small_conversations,
        )
        async with connection.transaction():
            await connection.execute(sql)
            facts = await _facts(connection, scale)
            await connection.execute(
                "INSERT INTO bench_seed VALUES ('facts', $1::jsonb)", json.dumps(facts)
            )
        await connection.execute("VACUUM ANALYZE")
        # last: a seed interrupted before this line is not reused
        await connection.execute(
            "INSERT INTO bench_seed VALUES ('seed', $1::jsonb)", json.dumps({"signature": wanted})
        )
        counts = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM users) AS users,"
            " (SELECT count(*) FROM conversations) AS conversations,"
            " (SELECT count(*) FROM messages) AS messages"
        )
    finally:
        await connection.close()
    log(f"seed: {dict(counts)} in {time.perf_counter() - started:.0f} s")
    return facts


def migrate(database: str) -> None:
    subprocess.run(
        [sys.executable, "main.py", "migrate"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": server_url(database), "ENVIRONMENT": "development"},
        check=True,
        stdout=subprocess.DEVNULL,
    )


async def drop(database: str) -> None:
    admin = await asyncpg.connect(admin_dsn())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()
