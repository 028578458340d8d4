"""The Groq provider through the real `groq` SDK against a local stand-in: what the model
is sent, how its tool calls run, and how provider failures reach the client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from core.config import DEFAULT_GROQ_MODEL, Settings
from core.ids import parse_global_id
from db.engine import create_engine
from db.models import Message
from tests.agent.turns import send_input, tasks_of
from tests.conftest import (
    ROOT,
    TEST_SECRET,
    GraphQLClient,
    LiveServer,
    ServerFactory,
    token_for,
)
from tests.live.test_websocket import SEND_MESSAGE_STREAM, collect_stream
from tests.live.ws_client import bearer, connect
from tests.standin.groq_standin import (
    GroqStandIn,
    Usage,
    call,
    error,
    slow,
    text,
    tool_calls,
)

API_KEY = "test-key-123"
TOOL_NAMES = ["add_task", "complete_task", "delete_task", "list_tasks", "update_task"]
# the SDK retries 429/5xx once (max_retries=1); this keeps its back-off short
FAST_RETRY = {"retry-after-ms": "10"}

SEND = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) {
    conversation { id messageCount }
    userMessage { id role content clientMessageId }
    message { id role content toolCalls { id name arguments result ok } }
  }
}
"""
TASK = "query($id: ID!) { task(id: $id) { title status } }"
CONVERSATIONS = """
{ conversations(first: 10) { edges { node {
    id messageCount messages(first: 10) { edges { node { id role content } } }
} } } }
"""
CREATE_TASK = "mutation($title: String!) { createTask(input: {title: $title}) { task { id } } }"


@pytest.fixture(scope="module")
def groq_standin() -> Iterator[GroqStandIn]:
    with GroqStandIn() as standin:
        yield standin


@pytest.fixture
def standin(groq_standin: GroqStandIn) -> GroqStandIn:
    groq_standin.reset()
    return groq_standin


StartGroq = Callable[..., Awaitable[LiveServer]]


@pytest.fixture
def start_groq(server_factory: ServerFactory, standin: GroqStandIn) -> StartGroq:
    async def start(**overrides: Any) -> LiveServer:
        settings: dict[str, Any] = {
            "agent_provider": "groq",
            "groq_api_key": API_KEY,
            "groq_base_url": standin.base_url,
            "agent_timeout_seconds": 5,
        }
        settings.update(overrides)
        return await server_factory(**settings)

    return start


@pytest.fixture
async def groq_server(start_groq: StartGroq) -> LiveServer:
    return await start_groq()


def new_client(live: LiveServer) -> GraphQLClient:
    return live.client(token_for(f"user-{uuid.uuid4()}"))


async def send(
    client: GraphQLClient,
    content: str,
    conversation_id: str | None = None,
    client_message_id: str | None = None,
) -> dict[str, Any]:
    payload = await client.execute(
        SEND, {"input": send_input(content, conversation_id, client_message_id)}
    )
    assert "errors" not in payload, payload
    result: dict[str, Any] = payload["data"]["sendMessage"]
    return result


async def send_failing(
    client: GraphQLClient, content: str, client_message_id: str | None = None
) -> dict[str, Any]:
    """The full payload of a send that must fail."""
    payload = await client.execute(SEND, {"input": send_input(content, None, client_message_id)})
    assert payload.get("errors"), payload
    assert payload["data"] is None
    return payload


async def conversations_of(client: GraphQLClient) -> list[dict[str, Any]]:
    edges = (await client.data(CONVERSATIONS))["conversations"]["edges"]
    return [edge["node"] for edge in edges]


async def only_conversation_messages(client: GraphQLClient) -> list[tuple[str, str]]:
    """(role, content) of the messages of the user's one conversation."""
    [conversation] = await conversations_of(client)
    messages = [edge["node"] for edge in conversation["messages"]["edges"]]
    assert conversation["messageCount"] == len(messages)
    return [(message["role"], message["content"]) for message in messages]


def code_of(payload: dict[str, Any]) -> str:
    code: str = payload["errors"][0]["extensions"]["code"]
    return code


# --- tool calls --------------------------------------------------------------------------


async def test_tool_call_then_final_text_creates_the_task_and_records_the_call(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    alice = new_client(groq_server)
    standin.script(
        tool_calls(call("add_task", {"title": "Buy milk"}, id="call_add")),
        text("I added Buy milk."),
    )

    reply = (await send(alice, "please remember to buy milk"))["message"]

    assert reply["content"] == "I added Buy milk."
    [record] = reply["toolCalls"]
    assert (record["id"], record["name"], record["arguments"], record["ok"]) == (
        "call_add",
        "add_task",
        {"title": "Buy milk"},
        True,
    )
    assert record["result"]["task"]["title"] == "Buy milk"
    assert await tasks_of(alice) == [("Buy milk", "PENDING")]
    requests = standin.chat_requests
    assert len(requests) == 2
    # every turn streams from the model: its reply is stored as it is written, so another
    # tab can follow it with replyStream even when this client asked with sendMessage
    assert [request.stream for request in requests] == [True, True]
    assert {request.model for request in requests} == {DEFAULT_GROQ_MODEL}


async def test_two_tool_calls_in_one_step_both_run_in_order(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    alice = new_client(groq_server)
    standin.script(
        tool_calls(
            call("add_task", {"title": "Buy milk"}), call("add_task", {"title": "Call mom"})
        ),
        text("Added both."),
    )

    reply = (await send(alice, "buy milk and call mom"))["message"]

    assert [(r["name"], r["arguments"], r["ok"]) for r in reply["toolCalls"]] == [
        ("add_task", {"title": "Buy milk"}, True),
        ("add_task", {"title": "Call mom"}, True),
    ]
    assert reply["content"] == "Added both."
    assert await tasks_of(alice) == [("Buy milk", "PENDING"), ("Call mom", "PENDING")]
    assert len(standin.chat_requests) == 2


async def test_second_request_carries_the_tool_calls_and_their_results(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    alice = new_client(groq_server)
    standin.script(
        tool_calls(
            call("add_task", {"title": "Buy milk"}, id="call_a"),
            call("list_tasks", {}, id="call_b"),
        ),
        text("Done: you have one task."),
    )

    reply = (await send(alice, "add buy milk then list"))["message"]

    first, second = standin.chat_requests
    assert second.messages[: len(first.messages)] == first.messages
    assistant, result_a, result_b = second.messages[len(first.messages) :]
    assert assistant["role"] == "assistant"
    assert [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in assistant["tool_calls"]
    ] == [
        ("call_a", "add_task", {"title": "Buy milk"}),
        ("call_b", "list_tasks", {}),
    ]
    assert (result_a["role"], result_a["tool_call_id"]) == ("tool", "call_a")
    assert (result_b["role"], result_b["tool_call_id"]) == ("tool", "call_b")
    assert json.loads(result_a["content"])["task"]["title"] == "Buy milk"
    assert [task["title"] for task in json.loads(result_b["content"])["tasks"]] == ["Buy milk"]
    assert reply["content"] == "Done: you have one task."


async def test_malformed_arguments_become_a_failed_call_and_the_turn_completes(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    alice = new_client(groq_server)
    standin.script(
        tool_calls(call("add_task", '{"title": "Buy milk"', id="call_bad")),
        text("Sorry, something went wrong on my side."),
    )

    reply = (await send(alice, "add buy milk"))["message"]

    [record] = reply["toolCalls"]
    assert (record["name"], record["ok"]) == ("add_task", False)
    assert "not valid JSON" in record["result"]["error"]
    assert reply["content"] == "Sorry, something went wrong on my side."
    tool_message = standin.chat_requests[1].messages[-1]
    assert tool_message["tool_call_id"] == "call_bad"
    assert json.loads(tool_message["content"])["ok"] is False
    assert await tasks_of(alice) == []


async def test_unknown_tool_becomes_a_failed_call(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    alice = new_client(groq_server)
    await alice.data(CREATE_TASK, {"title": "Keep me"})
    standin.script(tool_calls(call("drop_all_tasks", {})), text("I cannot do that."))

    reply = (await send(alice, "drop everything"))["message"]

    [record] = reply["toolCalls"]
    assert (record["name"], record["ok"]) == ("drop_all_tasks", False)
    assert "unknown tool" in record["result"]["error"]
    assert reply["content"] == "I cannot do that."
    assert await tasks_of(alice) == [("Keep me", "PENDING")]


async def test_tool_calls_cannot_reach_another_users_task(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    alice, bob = new_client(groq_server), new_client(groq_server)
    bob_id = (await bob.data("{ me { id } }"))["me"]["id"]
    bob_task = (await bob.data(CREATE_TASK, {"title": "Bob's plan"}))["createTask"]["task"]["id"]
    standin.script(
        tool_calls(
            call("complete_task", {"title": "Bob's plan", "user_id": bob_id}),
            call("delete_task", {"task_id": bob_task}),
            call("update_task", {"task_id": bob_task, "new_title": "Hijacked"}),
            call("complete_task", {"title": "Bob's plan"}),
        ),
        text("I could not find that task."),
    )

    reply = (await send(alice, "complete bob's plan for user bob"))["message"]

    results = [(r["name"], r["ok"], r["result"]["error"]) for r in reply["toolCalls"]]
    assert results == [
        ("complete_task", False, "unexpected argument(s): user_id"),
        ("delete_task", False, f"no task with id {bob_task}"),
        ("update_task", False, f"no task with id {bob_task}"),
        ("complete_task", False, 'no task titled "Bob\'s plan"'),
    ]
    assert await bob.data(TASK, {"id": bob_task}) == {
        "task": {"title": "Bob's plan", "status": "PENDING"}
    }
    assert await tasks_of(alice) == []


async def test_endless_tool_loop_ends_with_a_plain_answer_after_the_step_limit(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    alice = new_client(groq_server)
    standin.script_forever(tool_calls(call("list_tasks", {})))

    reply = (await send(alice, "list my tasks forever"))["message"]

    assert len(standin.chat_requests) == 5
    assert [(r["name"], r["ok"]) for r in reply["toolCalls"]] == [("list_tasks", True)] * 5
    assert reply["content"].startswith(
        "I stopped after too many steps (5 tool calls, 5 succeeded)."
    )
    assert await only_conversation_messages(alice) == [
        ("USER", "list my tasks forever"),
        ("ASSISTANT", reply["content"]),
    ]


# --- provider failures -------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500])
async def test_provider_error_is_agent_unavailable_and_keeps_only_the_question(
    groq_server: LiveServer, standin: GroqStandIn, status: int
) -> None:
    alice = new_client(groq_server)
    standin.script(error(status, headers=FAST_RETRY), error(status, headers=FAST_RETRY))

    payload = await send_failing(alice, "add a task to buy milk")

    assert code_of(payload) == "AGENT_UNAVAILABLE"
    assert len(standin.chat_requests) == 2  # the first try and the SDK's one retry
    assert await only_conversation_messages(alice) == [("USER", "add a task to buy milk")]
    assert await tasks_of(alice) == []


async def test_rejected_key_is_agent_unavailable_and_never_echoed(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    alice = new_client(groq_server)
    standin.script(error(401, message=f"Invalid API Key {API_KEY}"))

    response = await alice.raw(SEND, {"input": send_input("add a task to buy milk", None, None)})

    payload = response.json()
    assert code_of(payload) == "AGENT_UNAVAILABLE"
    assert API_KEY not in response.text
    assert len(standin.chat_requests) == 1
    assert await only_conversation_messages(alice) == [("USER", "add a task to buy milk")]


async def test_slow_model_is_agent_timeout_and_keeps_only_the_question(
    start_groq: StartGroq, standin: GroqStandIn
) -> None:
    live = await start_groq(agent_timeout_seconds=1)
    alice = new_client(live)
    standin.script(slow(3, text("late")))

    payload = await send_failing(alice, "add a task to buy milk")

    assert code_of(payload) == "AGENT_TIMEOUT"
    assert len(standin.chat_requests) == 1
    assert await only_conversation_messages(alice) == [("USER", "add a task to buy milk")]


async def test_a_request_over_its_time_limit_is_503_and_keeps_only_the_question(
    start_groq: StartGroq, standin: GroqStandIn
) -> None:
    """REQUEST_TIMEOUT_SECONDS bounds every HTTP request, whatever holds it up."""
    live = await start_groq(agent_timeout_seconds=30, request_timeout_seconds=1)
    alice = new_client(live)
    standin.script(slow(4, text("late")))

    response = await alice.raw(
        "mutation($c: String!) { sendMessage(input: {content: $c}) { message { id } } }",
        {"c": "add a task to buy milk"},
    )

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert code_of(response.json()) == "SERVICE_UNAVAILABLE"
    assert await only_conversation_messages(alice) == [("USER", "add a task to buy milk")]


async def test_failed_turn_rolls_back_the_tool_changes_it_made(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    alice = new_client(groq_server)
    await alice.data(CREATE_TASK, {"title": "Walk dog"})
    standin.script(
        tool_calls(
            call("add_task", {"title": "Doomed"}), call("complete_task", {"title": "Walk dog"})
        ),
        error(500, headers=FAST_RETRY),
        error(500, headers=FAST_RETRY),
    )

    payload = await send_failing(alice, "add doomed and finish walk dog")

    assert code_of(payload) == "AGENT_UNAVAILABLE"
    assert len(standin.chat_requests) == 3
    assert await tasks_of(alice) == [("Walk dog", "PENDING")]
    assert await only_conversation_messages(alice) == [("USER", "add doomed and finish walk dog")]


async def test_retry_after_a_failed_turn_runs_it_once_more_then_replays(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    alice = new_client(groq_server)
    standin.script(error(500, headers=FAST_RETRY), error(500, headers=FAST_RETRY))
    failed = await send_failing(alice, "add a task to buy milk", "retry-key")
    assert code_of(failed) == "AGENT_UNAVAILABLE"
    standin.script(tool_calls(call("add_task", {"title": "Buy milk"})), text("Added it this time."))

    retried = await send(alice, "add a task to buy milk", client_message_id="retry-key")
    replayed = await send(alice, "add a task to buy milk", client_message_id="retry-key")

    assert retried["message"]["content"] == "Added it this time."
    assert retried["userMessage"]["clientMessageId"] == "retry-key"
    assert retried["conversation"]["messageCount"] == 2
    assert replayed == retried
    assert len(standin.chat_requests) == 4  # two failed tries, then one turn of two steps
    assert await tasks_of(alice) == [("Buy milk", "PENDING")]
    assert await only_conversation_messages(alice) == [
        ("USER", "add a task to buy milk"),
        ("ASSISTANT", "Added it this time."),
    ]


# --- what the model is sent --------------------------------------------------------------


async def test_request_offers_the_five_tools_a_dated_system_prompt_and_the_key(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    alice = new_client(groq_server)
    today = date.today()

    await send(alice, "hello there")

    [request] = standin.chat_requests
    assert sorted(request.tool_names) == TOOL_NAMES
    assert request.body["tool_choice"] == "auto"
    assert request.authorization == f"Bearer {API_KEY}"
    system, question = request.messages
    assert system["role"] == "system"
    assert any(day.isoformat() in system["content"] for day in (today, today + timedelta(days=1)))
    assert question == {"role": "user", "content": "hello there"}


async def test_history_sent_is_bounded_by_history_limit_oldest_first(
    start_groq: StartGroq, standin: GroqStandIn
) -> None:
    alice = new_client(await start_groq(history_limit=4))
    standin.script(*(text(f"reply {n}") for n in range(1, 5)))
    conversation_id = (await send(alice, "question 1"))["conversation"]["id"]
    for n in range(2, 5):
        await send(alice, f"question {n}", conversation_id)

    requests = standin.chat_requests

    # a window of 4 that would open on a reply starts at the next question instead
    assert [len(request.messages) for request in requests] == [2, 4, 4, 4]
    assert [(m["role"], m["content"]) for m in requests[-1].messages[1:]] == [
        ("user", "question 3"),
        ("assistant", "reply 3"),
        ("user", "question 4"),
    ]
    assert all(request.messages[0]["role"] == "system" for request in requests)


async def test_requests_for_one_user_carry_no_other_users_data(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    alice, bob = new_client(groq_server), new_client(groq_server)
    await bob.data(CREATE_TASK, {"title": "Bob's secret plan"})
    await send(bob, "Bob's secret message")
    await alice.data(CREATE_TASK, {"title": "Alice's errand"})
    standin.reset()
    standin.script(tool_calls(call("list_tasks", {})), text("You have one task."))

    await send(alice, "what are my tasks?")

    sent = json.dumps([request.body for request in standin.chat_requests])
    assert "Alice's errand" in sent
    assert "Bob" not in sent


# --- what a reply records ----------------------------------------------------------------


async def stored_metadata(database_url: str, message_id: str) -> dict[str, Any]:
    """The `metadata` column of a message, read straight from the database."""
    type_name, row_id = parse_global_id(message_id)
    assert type_name == "Message"
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            meta = (
                await connection.execute(select(Message.meta).where(Message.id == row_id))
            ).scalar_one()
    finally:
        await engine.dispose()
    assert isinstance(meta, dict)
    return meta


async def test_reply_metadata_records_model_usage_and_latency(
    groq_server: LiveServer,
    standin: GroqStandIn,
    database_urls: dict[str, str],
    backend: str,
) -> None:
    alice = new_client(groq_server)
    standin.script(
        tool_calls(
            call("add_task", {"title": "Buy milk"}),
            usage=Usage(prompt_tokens=120, completion_tokens=17),
        ),
        text("I added Buy milk.", usage=Usage(prompt_tokens=150, completion_tokens=9)),
    )

    reply = (await send(alice, "please remember to buy milk"))["message"]

    meta = await stored_metadata(database_urls[backend], reply["id"])
    assert meta["provider"] == "groq"
    assert meta["model"] == DEFAULT_GROQ_MODEL  # the model the stand-in answered as
    assert meta["usage"] == {"prompt_tokens": 270, "completion_tokens": 26, "estimated": False}
    assert meta["steps"] == 2
    latency, model_time = meta["latency_ms"], meta["model_ms"]
    assert isinstance(latency, int | float)
    assert isinstance(model_time, int | float)
    assert 0 < model_time <= latency
    assert uuid.UUID(meta["run_id"])
    assert "step_limit" not in meta


# --- settings and reachability -----------------------------------------------------------


async def test_step_limit_is_configurable(start_groq: StartGroq, standin: GroqStandIn) -> None:
    alice = new_client(await start_groq(agent_max_steps=2))
    standin.script_forever(tool_calls(call("list_tasks", {})))

    reply = (await send(alice, "list my tasks forever"))["message"]

    assert len(standin.chat_requests) == 2
    assert [(r["name"], r["ok"]) for r in reply["toolCalls"]] == [("list_tasks", True)] * 2
    assert reply["content"].startswith(
        "I stopped after too many steps (2 tool calls, 2 succeeded)."
    )


def closed_local_port() -> int:
    """A loopback port that nothing listens on (bound once to pick it, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_unreachable_provider_is_agent_unavailable(
    start_groq: StartGroq, standin: GroqStandIn
) -> None:
    live = await start_groq(groq_base_url=f"http://127.0.0.1:{closed_local_port()}")
    alice = new_client(live)

    response = await alice.raw(SEND, {"input": send_input("add a task to buy milk", None, None)})

    payload = response.json()
    assert payload["data"] is None
    assert code_of(payload) == "AGENT_UNAVAILABLE"
    assert API_KEY not in response.text
    assert await only_conversation_messages(alice) == [("USER", "add a task to buy milk")]
    assert standin.chat_requests == []


# --- history replay ----------------------------------------------------------------------


async def test_earlier_tool_calls_are_replayed_to_the_model(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    alice = new_client(groq_server)
    standin.script(
        tool_calls(call("add_task", {"title": "Buy milk"}, id="call_add")),
        text("I added Buy milk."),
        text("You're welcome."),
    )
    first = await send(alice, "remember to buy milk")
    conversation_id = first["conversation"]["id"]

    await send(alice, "thanks", conversation_id)

    requests = standin.chat_requests
    assert len(requests) == 3
    _system, *history = requests[2].messages
    question, called, result, answer, follow_up = history
    assert question == {"role": "user", "content": "remember to buy milk"}
    assert called["role"] == "assistant"
    assert [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in called["tool_calls"]
    ] == [("call_add", "add_task", {"title": "Buy milk"})]
    assert (result["role"], result["tool_call_id"]) == ("tool", "call_add")
    replayed_result = json.loads(result["content"])
    assert replayed_result["ok"] is True
    assert replayed_result["task"]["title"] == "Buy milk"
    assert answer == {"role": "assistant", "content": "I added Buy milk."}
    assert follow_up == {"role": "user", "content": "thanks"}


# --- streaming ---------------------------------------------------------------------------


async def test_streamed_tool_calls_run_and_are_reported(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    alice = new_client(groq_server)
    standin.script(
        tool_calls(
            call("add_task", {"title": "buy milk"}), call("add_task", {"title": "call mom"})
        ),
        text("Added both."),
    )

    async with connect(groq_server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe(
            "s", SEND_MESSAGE_STREAM, {"input": {"content": "buy milk and call mom"}}
        )
        events = await collect_stream(ws, "s")

    kinds = [event["__typename"] for event in events]
    assert kinds[:4] == [
        "UserMessageSaved",
        "ReplyStarted",
        "ToolCallCompleted",
        "ToolCallCompleted",
    ]
    assert kinds[-1] == "ReplyCompleted"
    assert set(kinds[4:-1]) == {"ReplyDelta"}
    assert events[0]["message"]["content"] == "buy milk and call mom"
    assert [
        (e["toolCall"]["name"], e["toolCall"]["arguments"]["title"], e["toolCall"]["ok"])
        for e in events[2:4]
    ] == [("add_task", "buy milk", True), ("add_task", "call mom", True)]
    assert "".join(e["text"] for e in events[4:-1]) == "Added both."
    reply = events[-1]["message"]
    assert (reply["role"], reply["content"]) == ("ASSISTANT", "Added both.")
    assert [c["name"] for c in reply["toolCalls"]] == ["add_task", "add_task"]
    assert await tasks_of(alice) == [("buy milk", "PENDING"), ("call mom", "PENDING")]
    assert [request.stream for request in standin.chat_requests] == [True, True]


# --- logs --------------------------------------------------------------------------------


@asynccontextmanager
async def groq_server_process(
    database_url: str, standin: GroqStandIn, log_dir: Path
) -> AsyncIterator[tuple[str, Path]]:
    """`python -m main serve` in a child process whose stdout and stderr go to one file:
    the logs exactly as an operator would read them. An in-process server cannot show
    them reliably: structlog caches each logger's output stream on first use, which is
    pytest's capture file of whichever test logged first, not this test's `capfd`."""
    port = closed_local_port()
    settings = {
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        "JWT_SECRET": TEST_SECRET,
        "AGENT_PROVIDER": "groq",
        "GROQ_API_KEY": API_KEY,
        "GROQ_BASE_URL": standin.base_url,
        "AGENT_TIMEOUT_SECONDS": "5",
        "LOG_LEVEL": "debug",
        "RATE_LIMIT_PER_MINUTE": "1000",
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in Settings.model_fields and name != "PYTHONPATH"
    }
    log_path = log_dir / "server.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "main",
            "serve",
            cwd=log_dir,  # no stray .env is read
            env={**inherited, **settings, "PYTHONPATH": str(ROOT)},
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=2) as probe:
            for _ in range(300):
                if process.returncode is not None:
                    raise AssertionError(f"server exited early:\n{log_path.read_text()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await probe.get("/health")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"server never became healthy:\n{log_path.read_text()}")
        yield url, log_path
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_the_api_key_never_reaches_the_logs(
    standin: GroqStandIn, database_urls: dict[str, str], backend: str, tmp_path: Path
) -> None:
    async with (
        groq_server_process(database_urls[backend], standin, tmp_path) as (url, log),
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        alice = GraphQLClient(http, token_for(f"user-{uuid.uuid4()}"))
        standin.script(error(401, message=f"Invalid API Key {API_KEY}"))
        rejected = await send_failing(alice, "add a task to buy milk")
        standin.script(error(500, headers=FAST_RETRY), error(500, headers=FAST_RETRY))
        failing = await send_failing(alice, "add a task to call mom")

    assert [code_of(rejected), code_of(failing)] == ["AGENT_UNAVAILABLE"] * 2
    assert {r.authorization for r in standin.chat_requests} == {f"Bearer {API_KEY}"}
    logs = log.read_text()
    assert "groq answered an error" in logs
    assert "status=401" in logs
    assert "status=500" in logs
    assert API_KEY not in logs
