"""Exactly-once tool effects across a crash: a real server process (`python main.py
serve`, the Groq provider pointed at the local stand-in) is killed with SIGKILL in the
middle of a turn, and the client retries with the same `clientMessageId` on a fresh one.

A turn's tool changes commit together with its reply. Killed after the tool ran but
before that commit (the model is still writing the answer), nothing of the turn stays
but the question, and the retry runs it once. Killed after the commit but before the
client read the reply, the retry returns the stored reply without asking the model
again. Either way: one task, one reply, and the retry returns it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from db.engine import create_engine
from db.models import LISTED_STATUSES, Message, MessageRole, Task, User
from tests.conftest import ROOT, TEST_SECRET, GraphQLClient, token_for
from tests.live.test_two_instances import free_port
from tests.standin.groq_standin import GroqStandIn, call, slow, text, tool_calls

PYTHON = ROOT / ".venv" / "bin" / "python"
SEND = """
mutation($input: SendMessageInput!) {
  sendMessage(input: $input) {
    userMessage { id }
    message { id content toolCalls { name ok result } affectedTasks { id title } }
  }
}"""


@pytest.fixture(scope="module")
def groq_standin() -> Iterator[GroqStandIn]:
    with GroqStandIn() as standin:
        yield standin


@pytest.fixture
def standin(groq_standin: GroqStandIn) -> GroqStandIn:
    groq_standin.reset()
    return groq_standin


@asynccontextmanager
async def server_process(
    database_url: str, standin: GroqStandIn, log_path: Path
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python main.py serve` in a child process; yields (base URL, process) once healthy."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": database_url,
        "JWT_SECRET": TEST_SECRET,
        "ENVIRONMENT": "test",
        "AGENT_PROVIDER": "groq",
        "GROQ_API_KEY": "test-key",
        "GROQ_BASE_URL": standin.base_url,
        "AGENT_TIMEOUT_SECONDS": "60",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "RATE_LIMIT_PER_MINUTE": "1000",
        "DB_POOL_SIZE": "2",
    }
    python = str(PYTHON if PYTHON.exists() else Path(sys.executable))
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [python, "main.py", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"server exited early:\n{log_path.read_text()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{url}/health")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise AssertionError(f"server never became healthy:\n{log_path.read_text()}")
                await asyncio.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 10)


async def kill_hard(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    await asyncio.to_thread(process.wait, 10)
    assert process.returncode == -signal.SIGKILL


async def counts(database_url: str, subject: str) -> tuple[int, int, int]:
    """(questions, replies, tasks) the user has in the database, deleted rows included."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            user = select(User.id).where(User.subject == subject).scalar_subquery()

            async def count(stmt: Any) -> int:
                return int((await connection.execute(stmt)).scalar_one())

            messages = select(func.count()).select_from(Message).where(Message.user_id == user)
            questions = await count(messages.where(Message.role == MessageRole.USER))
            # a reply counts once it ended (COMPLETED or STOPPED): a STREAMING row is only
            # a reply being written (issue 12), and one left by the killed server ends FAILED
            replies = await count(
                messages.where(
                    Message.role == MessageRole.ASSISTANT, Message.status.in_(LISTED_STATUSES)
                )
            )
            tasks = await count(select(func.count()).select_from(Task).where(Task.user_id == user))
            return questions, replies, tasks
    finally:
        await engine.dispose()


async def until(condition: Any, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


async def post_without_reading(url: str, token: str, body: dict[str, Any]) -> asyncio.StreamWriter:
    """Sends a GraphQL request and never reads the answer: whatever the server writes back
    is not delivered to this client."""
    port = int(url.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = orjson.dumps(body)
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    await writer.drain()
    return writer


@pytest.mark.parametrize("moment", ["after_the_tool_ran", "after_the_commit"])
async def test_a_turn_killed_midway_and_retried_applies_its_tool_once(
    database_urls: dict[str, str],
    backend: str,
    standin: GroqStandIn,
    tmp_path: Path,
    moment: str,
) -> None:
    database_url = database_urls[backend]
    subject = f"crash-{uuid.uuid4()}"
    token = token_for(subject)
    key = f"key-{uuid.uuid4()}"
    variables: dict[str, Any] = {"input": {"content": "buy milk", "clientMessageId": key}}
    send = {"query": SEND, "variables": variables}
    add_milk = tool_calls(call("add_task", {"title": "buy milk"}))
    if moment == "after_the_tool_ran":
        # the answer after the tool call never comes: the server is killed meanwhile
        standin.script(add_milk, slow(120, text("Added buy milk.")))
    else:
        standin.script(add_milk, text("Added buy milk."))

    async with server_process(database_url, standin, tmp_path / "first.log") as (url, process):
        writer = await post_without_reading(url, token, send)
        if moment == "after_the_tool_ran":
            # the second model request carries the tool's result: add_task has run
            await standin.wait_for_requests(2, timeout=15)
            assert standin.chat_requests[1].messages[-1]["role"] == "tool"
        else:

            async def reply_committed() -> bool:
                return (await counts(database_url, subject))[1] == 1

            await until(reply_committed, "the reply is committed")
        await kill_hard(process)
        writer.close()

    questions, replies, tasks = await counts(database_url, subject)
    if moment == "after_the_tool_ran":
        assert (questions, replies, tasks) == (1, 0, 0)  # the tool's change died with the turn
        standin.script(add_milk, text("Added buy milk."))
    else:
        assert (questions, replies, tasks) == (1, 1, 1)
    requests_before_retry = len(standin.chat_requests)

    async with (
        server_process(database_url, standin, tmp_path / "second.log") as (url, _),
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        client = GraphQLClient(http, token)
        retried = (await client.data(SEND, variables))["sendMessage"]
        again = (await client.data(SEND, variables))["sendMessage"]

    reply = retried["message"]
    assert reply["content"] == "Added buy milk."
    [tool_call] = reply["toolCalls"]
    assert (tool_call["name"], tool_call["ok"]) == ("add_task", True)
    assert [task["title"] for task in reply["affectedTasks"]] == ["buy milk"]
    assert again["message"]["id"] == reply["id"]
    assert again["userMessage"]["id"] == retried["userMessage"]["id"]
    assert await counts(database_url, subject) == (1, 1, 1)  # one task, one reply
    model_requests = len(standin.chat_requests) - requests_before_retry
    # a turn that died is run once more (two model steps); a committed one is returned
    assert model_requests == (2 if moment == "after_the_tool_ran" else 0)
