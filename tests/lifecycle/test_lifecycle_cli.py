"""The data-lifecycle commands (archive, purge, export-user, erase-user) against the
test's database, next to a running server: data made through the API, aged by moving
its timestamps back, then each command as the CLI runs it; what is left is checked in
the database and through the API."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.ids import parse_global_id
from db.engine import create_engine, create_session_factory
from live.broker import LocalBroker
from main import build_parser, run_lifecycle
from services import lifecycle
from tests.conftest import ROOT, TEST_SECRET, GraphQLClient, LiveServer, make_settings, token_for

SEND = """mutation($content: String!, $conversationId: ID) {
  sendMessage(input: {content: $content, conversationId: $conversationId}) {
    conversation { id }
  }
}"""
CREATE = "mutation($t: String!) { createConversation(input: {title: $t}) { conversation { id } } }"
DELETE = "mutation($id: ID!) { deleteConversation(input: {id: $id}) { deletedId } }"
REGENERATE = """mutation($id: ID!) {
  regenerateReply(input: {conversationId: $id}) { conversation { id } }
}"""
STATUS = "query($id: ID!) { conversation(id: $id) { status } }"


@pytest.fixture
async def database(database_urls: dict[str, str], backend: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_urls[backend])
    yield engine
    await engine.dispose()


async def run_command(url: str, *argv: str) -> tuple[int, str]:
    """The command as `python main.py …` runs it: (exit status, stdout)."""
    out = io.StringIO()
    status = await run_lifecycle(make_settings(url), build_parser().parse_args(argv), out)
    return status, out.getvalue()


def counts(out: str, pattern: str) -> tuple[int, ...]:
    """The numbers in a command's one-line report of the form `pattern` ({} for each)."""
    expression = re.escape(pattern.strip()).replace(r"\{\}", r"(\d+)")
    match = re.fullmatch(expression, out.strip())
    assert match is not None, out
    return tuple(int(number) for number in match.groups())


def row_id(global_id: str) -> str:
    return str(parse_global_id(global_id)[1])


async def age(engine: AsyncEngine, table: str, column: str, where: str, **params: Any) -> None:
    """Moves `column` of the matching rows 100 days back."""
    async with engine.begin() as connection:
        rows = await connection.execute(
            text(f"SELECT id, {column} FROM {table} WHERE {where}"), params
        )
        for found_id, value in rows.all():
            if isinstance(value, str):  # SQLite stores naive ISO text
                value = datetime.fromisoformat(value)
            await connection.execute(
                text(f"UPDATE {table} SET {column} = :value WHERE id = :id"),
                {"value": value - timedelta(days=100), "id": found_id},
            )


async def count(engine: AsyncEngine, table: str, where: str, **params: Any) -> int:
    async with engine.connect() as connection:
        found = await connection.scalar(text(f"SELECT count(*) FROM {table} WHERE {where}"), params)
    return int(found or 0)


async def user_row_id(engine: AsyncEngine, subject: str) -> str | None:
    async with engine.connect() as connection:
        found = await connection.scalar(
            text("SELECT id FROM users WHERE subject = :subject"), {"subject": subject}
        )
    return None if found is None else str(uuid.UUID(str(found)))


def id_param(engine: AsyncEngine, value: str) -> Any:
    """A uuid as the backend stores it (SQLite: 32 hex digits)."""
    parsed = uuid.UUID(value)
    return parsed.hex if engine.dialect.name == "sqlite" else parsed


async def conversation_of(
    client: GraphQLClient, content: str, conversation_id: str | None = None
) -> str:
    variables: dict[str, Any] = {"content": content}
    if conversation_id is not None:
        variables["conversationId"] = conversation_id
    data = await client.data(SEND, variables)
    return str(data["sendMessage"]["conversation"]["id"])


async def test_archive_turns_only_quiet_active_conversations_archived(
    server: LiveServer, database: AsyncEngine, database_urls: dict[str, str], backend: str
) -> None:
    alice = server.client(token_for(f"user-{uuid.uuid4()}"))
    quiet = await conversation_of(alice, "hello")
    recent = await conversation_of(alice, "hello again")
    quiet_created = (await alice.data(CREATE, {"t": "never used"}))["createConversation"]
    quiet_empty = quiet_created["conversation"]["id"]
    for conversation in (quiet, quiet_empty):
        await age(
            database,
            "conversations",
            "updated_at",
            "id = :id",
            id=id_param(database, row_id(conversation)),
        )

    status, out = await run_command(database_urls[backend], "archive", "--inactive-days", "90")
    # other tests of the worker may have left old conversations too
    assert status == 0
    assert counts(out, "archived {} conversations") >= (2,)
    for conversation, expected in (
        (quiet, "ARCHIVED"),
        (quiet_empty, "ARCHIVED"),
        (recent, "ACTIVE"),
    ):
        data = await alice.data(STATUS, {"id": conversation})
        assert data["conversation"]["status"] == expected

    # idempotent: nothing is left to archive
    assert (await run_command(database_urls[backend], "archive", "--inactive-days", "90"))[
        1
    ].strip() == ("archived 0 conversations")
    # a quiet conversation that gets a message is active again and stays so
    await alice.data(
        "mutation($id: ID!) { restoreConversation(input: {id: $id}) { conversation { id } } }",
        {"id": quiet},
    )
    await conversation_of(alice, "back", quiet)
    assert (await run_command(database_urls[backend], "archive", "--inactive-days", "90"))[
        1
    ].strip() == ("archived 0 conversations")


async def test_archive_works_in_batches(
    server: LiveServer, database: AsyncEngine, database_urls: dict[str, str], backend: str
) -> None:
    alice = server.client(token_for(f"user-{uuid.uuid4()}"))
    for index in range(5):
        created = await alice.data(CREATE, {"t": f"old {index}"})
        conversation = created["createConversation"]["conversation"]["id"]
        await age(
            database,
            "conversations",
            "updated_at",
            "id = :id",
            id=id_param(database, row_id(conversation)),
        )
    sessions = create_session_factory(database)
    report = await lifecycle.archive_inactive(
        sessions, LocalBroker(), timedelta(days=90), batch_size=2
    )
    assert report.conversations >= 5  # other tests of the worker may have left old ones
    listed = await alice.data("{ conversations(first: 10, status: ARCHIVED) { totalCount } }")
    assert listed["conversations"]["totalCount"] == 5


async def test_purge_hard_deletes_what_was_deleted_long_ago(
    server: LiveServer, database: AsyncEngine, database_urls: dict[str, str], backend: str
) -> None:
    alice = server.client(token_for(f"user-{uuid.uuid4()}"))
    gone = await conversation_of(alice, "add a task to buy milk")
    await conversation_of(alice, "list my tasks", gone)
    recently_deleted = await conversation_of(alice, "hello")
    kept = await conversation_of(alice, "hello there")
    await alice.data(REGENERATE, {"id": kept})  # the first reply is kept, soft-deleted
    for conversation in (gone, recently_deleted):
        await alice.data(DELETE, {"id": conversation})
    old = id_param(database, row_id(gone))
    await age(database, "conversations", "deleted_at", "id = :id", id=old)
    await age(database, "messages", "deleted_at", "conversation_id = :id", id=old)
    kept_id = id_param(database, row_id(kept))
    await age(
        database,
        "messages",
        "deleted_at",
        "conversation_id = :id AND deleted_at IS NOT NULL",
        id=kept_id,
    )
    assert await count(database, "agent_runs", "conversation_id = :id", id=old) == 2

    status, out = await run_command(database_urls[backend], "purge", "--deleted-days", "30")
    # the gone conversation's 4 messages and 2 runs, and the replaced reply (other tests
    # of the worker may have left old deleted rows too)
    assert status == 0
    purged = counts(out, "purged {} conversations, {} messages, {} agent runs")
    assert all(found >= least for found, least in zip(purged, (1, 5, 2), strict=True)), out
    assert await count(database, "conversations", "id = :id", id=old) == 0
    assert await count(database, "messages", "conversation_id = :id", id=old) == 0
    assert await count(database, "agent_runs", "conversation_id = :id", id=old) == 0
    recent = id_param(database, row_id(recently_deleted))
    assert await count(database, "conversations", "id = :id", id=recent) == 1
    assert await count(database, "messages", "conversation_id = :id", id=recent) == 2
    # the live conversation keeps its question and its live reply, with its run
    assert await count(database, "messages", "conversation_id = :id", id=kept_id) == 2
    page = await alice.data(
        "query($id: ID!) { conversation(id: $id) { messages(first: 10) { totalCount } } }",
        {"id": kept},
    )
    assert page["conversation"]["messages"]["totalCount"] == 2

    status, out = await run_command(database_urls[backend], "purge", "--deleted-days", "30")
    assert out.strip() == "purged 0 conversations, 0 messages, 0 agent runs"


async def test_export_user_prints_all_of_one_users_data(
    server: LiveServer, database_urls: dict[str, str], backend: str
) -> None:
    subject = f"user-{uuid.uuid4()}"
    alice = server.client(token_for(subject))
    bob = server.client(token_for(f"user-{uuid.uuid4()}"))
    conversation = await conversation_of(alice, "add a task to buy milk")
    await conversation_of(bob, "add a task to walk the dog")
    me = (await alice.data("{ me { id } }"))["me"]["id"]

    status, out = await run_command(database_urls[backend], "export-user", subject)
    assert status == 0
    export = json.loads(out)
    assert export["user"]["id"] == me
    assert export["user"]["subject"] == subject
    assert [row["id"] for row in export["conversations"]] == [conversation]
    question, reply = export["messages"]
    assert (question["role"], question["content"]) == ("USER", "add a task to buy milk")
    assert reply["parentId"] == question["id"]
    assert [call["name"] for call in reply["toolCalls"]] == ["add_task"]
    assert [task["title"] for task in export["tasks"]] == ["buy milk"]
    (run,) = export["agentRuns"]
    assert (run["status"], run["userMessageId"]) == ("COMPLETED", question["id"])
    assert "walk the dog" not in out

    assert (await run_command(database_urls[backend], "export-user", f"nobody-{uuid.uuid4()}"))[
        0
    ] == 1


async def test_erase_user_removes_everything_and_a_returning_user_starts_afresh(
    server: LiveServer, database: AsyncEngine, database_urls: dict[str, str], backend: str
) -> None:
    subject = f"user-{uuid.uuid4()}"
    alice = server.client(token_for(subject))
    bob = server.client(token_for(f"user-{uuid.uuid4()}"))
    first = await conversation_of(alice, "add a task to buy milk")
    await conversation_of(alice, "add a task to call mom", first)
    await alice.data(REGENERATE, {"id": first})
    await conversation_of(bob, "add a task to walk the dog")
    user_id = await user_row_id(database, subject)
    assert user_id is not None

    status, out = await run_command(database_urls[backend], "erase-user", subject)
    assert (status, out.strip()) == (
        0,
        # the regenerated reply replays its add_task instead of adding a third task
        f"erased user {subject!r}: 1 conversations, 5 messages, 2 tasks, 3 agent runs",
    )
    owner = id_param(database, user_id)
    for table in ("conversations", "messages", "tasks", "agent_runs"):
        assert await count(database, table, "user_id = :id", id=owner) == 0
    assert await user_row_id(database, subject) is None
    assert (await bob.data("{ tasks(first: 10) { totalCount } }"))["tasks"]["totalCount"] == 1
    assert (await run_command(database_urls[backend], "erase-user", subject))[1].strip() == (
        f"erased nothing: no user {subject!r}"
    )

    # the server still knows the user: a turn in a conversation of theirs from before
    # finds it gone (and writes nothing), then they come back to an empty account
    refused = await alice.execute(SEND, {"content": "still there?", "conversationId": first})
    assert refused["errors"][0]["extensions"]["code"] == "NOT_FOUND", refused
    for table in ("conversations", "messages", "agent_runs"):
        assert await count(database, table, "user_id = :id", id=owner) == 0
    assert (await alice.data("{ conversations(first: 5) { totalCount } }"))["conversations"][
        "totalCount"
    ] == 0
    await alice.data(
        "mutation { createTask(input: {title: 'fresh start'}) { task { id } } }".replace("'", '"')
    )
    await conversation_of(alice, "add a task to water plants")
    tasks = await alice.data("{ tasks(first: 10) { edges { node { title } } } }")
    assert sorted(edge["node"]["title"] for edge in tasks["tasks"]["edges"]) == [
        "fresh start",
        "water plants",
    ]
    assert await user_row_id(database, subject) == user_id


async def test_erase_user_works_in_batches(
    server: LiveServer, database: AsyncEngine, database_urls: dict[str, str], backend: str
) -> None:
    subject = f"user-{uuid.uuid4()}"
    alice = server.client(token_for(subject))
    for index in range(3):
        await alice.data(CREATE, {"t": f"c{index}"})
        await alice.data(
            "mutation($t: String!) { createTask(input: {title: $t}) { task { id } } }",
            {"t": f"t{index}"},
        )
    report = await lifecycle.erase_user(
        create_session_factory(database), LocalBroker(), subject, batch_size=2
    )
    assert (report.conversations, report.tasks) == (3, 3)
    assert await user_row_id(database, subject) is None


def test_the_command_line_runs_a_lifecycle_command(database_urls: dict[str, str]) -> None:
    """`python main.py purge …` in a process of its own (once: the commands above run the
    same code in-process, on both databases)."""
    environment = {
        **os.environ,
        "DATABASE_URL": database_urls["postgres"],
        "JWT_SECRET": TEST_SECRET,
        "ENVIRONMENT": "test",
    }
    done = subprocess.run(
        [sys.executable, "main.py", "purge", "--deleted-days", "36500"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (
        0,
        "purged 0 conversations, 0 messages, 0 agent runs",
    )


def test_negative_days_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["archive", "--inactive-days", "-1"])
    assert exited.value.code == 2
    assert "must be 0 or more" in capsys.readouterr().err
