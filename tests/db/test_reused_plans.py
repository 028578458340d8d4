"""Statements are prepared once per connection and reused with PostgreSQL's own plan
choice (`plan_cache_mode = auto`): after five executions a statement may run on its
generic plan, made for an average conversation. A history page's plan must read the
page off the index in a conversation of any size, not sort the whole conversation.

The redundant user scoping of a message read (`messages.user_id = :user` beside its
conversation) is what misled the planner: taken as independent of the conversation, it
made it expect one row, for which a sort costs nothing. The planner now knows that a
message's user follows from its conversation (extended statistics, migration 0004)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from db import driver, whole_pages
from db import messages as message_queries
from db.engine import create_engine, create_session_factory
from db.models import ConversationStatus
from db.pagination import Window
from db.whole_pages import PageAsk
from tests.pgtools import asyncpg_dsn
from tests.plans import nodes, plan_of, rows_read

BIG = 20_000  # messages in the one large conversation
SMALL_USERS = 500  # each with SMALL_EACH conversations of three messages
SMALL_EACH = 4
PAGE = 50


async def _seed(admin: asyncpg.Connection, user_id: uuid.UUID, big: uuid.UUID) -> list[uuid.UUID]:
    small_users = [uuid.uuid4() for _ in range(SMALL_USERS)]
    users = [user_id, *small_users]
    await admin.executemany(
        "INSERT INTO users (id, subject, created_at, last_change_seq) VALUES ($1, $2, now(), 0)",
        [(u, f"plans-{u}") for u in users],
    )
    conversations = [(big, user_id)] + [
        (uuid.uuid4(), u) for u in small_users for _ in range(SMALL_EACH)
    ]
    await admin.executemany(
        """INSERT INTO conversations (id, user_id, title, status, metadata, last_seq,
               change_seq, created_at, updated_at)
           VALUES ($1, $2, 'plans', 'ACTIVE', '{}', 0, 0, now(), now())""",
        conversations,
    )
    await admin.execute(
        """INSERT INTO messages (id, conversation_id, user_id, seq, role, status, content,
               tool_calls, metadata, created_at)
           SELECT gen_random_uuid(), c.id, c.user_id, n, 'USER', 'COMPLETED', 'm', '[]', '{}',
                  now()
           FROM unnest($1::uuid[], $2::uuid[], $3::int[]) AS c(id, user_id, size),
                generate_series(1, c.size) AS n""",
        [c for c, _ in conversations],
        [u for _, u in conversations],
        [BIG] + [3] * (len(conversations) - 1),
    )
    await admin.execute("ANALYZE users, conversations, messages")
    return users


@dataclass
class Seeded:
    """The seeded database: a user with one conversation of `BIG` messages among many
    small ones, an engine whose statements (after seeding) are `captured`, and an admin
    connection to read plans with."""

    engine: AsyncEngine
    admin: asyncpg.Connection
    user_id: uuid.UUID
    big: uuid.UUID
    captured: list[tuple[str, Any]] = field(default_factory=list)


@asynccontextmanager
async def _seeded(url: str) -> AsyncIterator[Seeded]:
    engine = create_engine(url, pool_size=1, pre_ping=False)
    admin = await asyncpg.connect(asyncpg_dsn(url))
    seeded = Seeded(engine, admin, uuid.uuid4(), uuid.uuid4())
    users: list[uuid.UUID] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seeded.captured.append((statement, parameters))

    try:
        users = await _seed(admin, seeded.user_id, seeded.big)
        # a listener sends the statements through SQLAlchemy: the same SQL, seen here
        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        yield seeded
    finally:
        if event.contains(engine.sync_engine, "before_cursor_execute", capture):
            event.remove(engine.sync_engine, "before_cursor_execute", capture)
        await admin.execute("DELETE FROM users WHERE id = ANY($1::uuid[])", users)
        await admin.close()
        await engine.dispose()


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_reused_history_page_plan_reads_the_page_not_the_conversation(
    database_urls: dict[str, str], backend: str
) -> None:
    async with _seeded(database_urls[backend]) as seeded:
        user_id, big = seeded.user_id, seeded.big
        newest = Window(limit=PAGE, backward=True)
        async with create_session_factory(seeded.engine)() as session:
            await message_queries.list_messages(session, user_id, big, newest)  # generic
            await message_queries.recent_history(session, big, PAGE, BIG)  # a turn's
            await whole_pages.conversation_with_messages(  # compiled
                functools.partial(driver.rows, session),
                PageAsk(("id",)),
                PageAsk(("id", "seq", "content")),
                user_id,
                big,
                newest,
            )
        captured = [(sql, values) for sql, values in seeded.captured if "FROM messages" in sql]
        assert len(captured) >= 3, captured
        for sql, parameters in captured:
            read = await rows_read(seeded.admin, sql, parameters)
            # the page (and a row or two beside it), not the conversation's 20,000
            assert read <= 10 * PAGE, (read, sql)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_counts_and_newest_messages_come_from_the_listed_messages_index(
    database_urls: dict[str, str], backend: str
) -> None:
    """A conversation page's message counts are read from the index alone, and its
    newest messages off the index of listed ones, with no message row read to be
    skipped (migration 0006): on either plan."""
    async with _seeded(database_urls[backend]) as seeded:
        # index-only needs a visibility map
        await seeded.admin.execute("VACUUM (ANALYZE) messages")
        async with create_session_factory(seeded.engine)() as session:
            await whole_pages.conversation_page(
                functools.partial(driver.rows, session),
                PageAsk(
                    ("updated_at", "id"),
                    total=True,
                    summary=whole_pages.MessageSummary(count=True, last=("content",)),
                ),
                seeded.user_id,
                ConversationStatus.ACTIVE,
                None,
                Window(limit=20, backward=False),
            )
        [(sql, parameters)] = seeded.captured
        for generic in (False, True):
            plan = await plan_of(seeded.admin, sql, parameters, generic=generic)
            on_messages = [
                node
                for node in nodes(plan)
                if node.get("Relation Name") == "messages" or node.get("Index Name")
            ]
            kinds = {(n["Node Type"], n.get("Index Name")) for n in on_messages}
            assert ("Index Only Scan", "ix_messages_listed") in kinds, kinds
            assert not any(n.get("Rows Removed by Filter") for n in on_messages), kinds
            assert all(
                n.get("Index Name") != "uq_messages_conversation_id_seq" for n in on_messages
            ), kinds
