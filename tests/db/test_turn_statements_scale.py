"""What a turn and a conversation's reads cost is bounded by what they touch, not by the
conversation's size: every statement the server sends while a user chats in a
conversation of 20,000 messages (a turn, a regenerated reply, a stop with nothing
running, the conversation with its active reply and newest page) reads a bounded number
of its rows, on the plan made for its values and on the generic plan a reused statement
may run on. A lookup of a conversation's STREAMING replies once scanned all of them."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from core.ids import to_global_id
from tests.conftest import make_settings, start_server, token_for
from tests.pgtools import asyncpg_dsn
from tests.plans import rows_read

BIG = 20_000
#: a turn reads the history it sends the model (`history_limit`) and a page or two
BOUND = 500
#: tables every test of the worker writes to: a scan of one grows with the suite too
TABLES = ("messages", "conversations", "agent_runs", "reply_chunks", "tasks", "users")

CONVERSATION = """
query($id: ID!) { conversation(id: $id) { id messageCount activeReply { id }
  messages(last: 5) { edges { node { id content } } } } }
"""


async def _seed_big_conversation(admin: asyncpg.Connection, subject: str) -> uuid.UUID:
    user_id, conversation_id = uuid.uuid4(), uuid.uuid4()
    await admin.execute(
        "INSERT INTO users (id, subject, created_at, last_change_seq) VALUES ($1, $2, now(), 0)",
        user_id,
        subject,
    )
    await admin.execute(
        """INSERT INTO conversations (id, user_id, title, status, metadata, last_seq,
               change_seq, created_at, updated_at)
           VALUES ($1, $2, 'big', 'ACTIVE', '{}', $3, 0, now(), now())""",
        conversation_id,
        user_id,
        BIG,
    )
    await admin.execute(
        """INSERT INTO messages (id, conversation_id, user_id, seq, role, status, content,
               tool_calls, metadata, created_at)
           SELECT gen_random_uuid(), $1, $2, n, CASE WHEN n % 2 = 1 THEN 'USER'
                  ELSE 'ASSISTANT' END, 'COMPLETED', 'm ' || n, '[]', '{}', now()
           FROM generate_series(1, $3::int) AS n""",
        conversation_id,
        user_id,
        BIG,
    )
    await admin.execute("ANALYZE users, conversations, messages, agent_runs")
    return conversation_id


@pytest.mark.parametrize("backend", ["postgres"])
async def test_every_statement_of_a_turn_reads_rows_bounded_by_the_turn(
    database_urls: dict[str, str], backend: str
) -> None:
    url = database_urls[backend]
    admin = await asyncpg.connect(asyncpg_dsn(url))
    subject = f"scale-{uuid.uuid4()}"
    conversation_id = await _seed_big_conversation(admin, subject)
    live = await start_server(make_settings(url))
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    app = live.server.config.app
    assert isinstance(app, FastAPI)
    # a turn runs on a connection of the locks' pool (db/locks.py), the rest on the app's;
    # a listener sends the statements through SQLAlchemy: the same SQL, seen here
    engines = [app.state.engine.sync_engine, app.state.lock_engine.sync_engine]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", capture)
    try:
        client = live.client(token_for(subject))
        conversation = to_global_id("Conversation", conversation_id)
        await client.data(
            "mutation($c: ID!) { sendMessage(input: {conversationId: $c, content:"
            ' "list my tasks"}) { message { id } } }',
            {"c": conversation},
        )
        await client.data(
            "mutation($c: ID!) { regenerateReply(input: {conversationId: $c}) { message { id } } }",
            {"c": conversation},
        )
        await client.data(
            "mutation($c: ID!) { stopReply(input: {conversationId: $c}) { message { id } } }",
            {"c": conversation},
        )
        await client.data(CONVERSATION, {"id": conversation})
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", capture)
        await live.stop()
    # before the replay of a statement that inserts given rows, those rows (already there
    # since it ran) are taken out, so it runs as it first did; every other statement is
    # replayed on the conversation as the requests left it
    turn_messages = f"SELECT id FROM messages WHERE conversation_id = '{conversation_id}'"

    def written_by(sql: str) -> str:
        if "INSERT INTO messages" in sql:  # a turn's question and reply, stored
            return f"DELETE FROM messages WHERE id IN ({turn_messages} AND seq > {BIG})"
        if "INSERT INTO reply_chunks" in sql:  # a reply's end, with its stream's entries
            return f"DELETE FROM reply_chunks WHERE message_id IN ({turn_messages})"
        return ""

    try:
        checked, unbounded = 0, []
        for sql, parameters in captured:
            if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "WITH")):
                continue  # an INSERT of given rows reads none
            if "count(" in sql:
                continue  # `messageCount` reads what it counts (left for a counter)
            for generic in (False, True):
                for table in TABLES:
                    read = await rows_read(
                        admin, sql, parameters, table, generic=generic, setup=written_by(sql)
                    )
                    if read > BOUND:
                        plan = "generic" if generic else "custom"
                        unbounded.append((read, f"{plan} {table}", sql))
            checked += 1
        assert checked >= 10, captured
        assert unbounded == [], "\n".join(f"{r} {g}: {q[:900]}" for r, g, q in unbounded)
    finally:
        await admin.execute("DELETE FROM users WHERE subject = $1", subject)
        await admin.close()
