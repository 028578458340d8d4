"""Groq as it is today, through the real `groq` SDK against the local stand-in: a default
model Groq still serves, switched-off and unknown models, fallbacks, rate limits that do
not fit the turn, one tool call per generation, `reasoning`, `tool_use_failed`, streamed
usage, and `python main.py check`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent.providers.groq import GroqProvider
from core.config import DEFAULT_GROQ_MODEL, Settings
from tests.agent.test_groq_path import (
    API_KEY,
    FAST_RETRY,
    code_of,
    conversations_of,
    new_client,
    only_conversation_messages,
    send,
    send_failing,
    stored_metadata,
)
from tests.agent.turns import tasks_of
from tests.conftest import ROOT, LiveServer, ServerFactory
from tests.live.test_websocket import SEND_MESSAGE_STREAM, collect_stream
from tests.live.ws_client import bearer, connect
from tests.standin.groq_standin import (
    CURRENT_MODELS,
    DECOMMISSIONED_MODELS,
    GroqStandIn,
    Usage,
    call,
    error,
    text,
    tool_calls,
)

SWITCHED_OFF = "llama-3.3-70b-versatile"
StartGroq = Callable[..., Awaitable[LiveServer]]


@pytest.fixture(scope="module")
def groq_standin() -> Iterator[GroqStandIn]:
    with GroqStandIn() as standin:
        yield standin


@pytest.fixture
def standin(groq_standin: GroqStandIn) -> GroqStandIn:
    groq_standin.reset()
    return groq_standin


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


def tool_use_failed(generation: str) -> dict[str, Any]:
    return {
        "error": {
            "message": "Failed to call a function. Please adjust your prompt. "
            "See 'failed_generation' for more details.",
            "type": "invalid_request_error",
            "code": "tool_use_failed",
            "failed_generation": generation,
        }
    }


# --- the model ---------------------------------------------------------------------------


def test_the_default_model_is_one_groq_still_serves() -> None:
    assert Settings.model_fields["groq_model"].default == DEFAULT_GROQ_MODEL
    assert DEFAULT_GROQ_MODEL not in DECOMMISSIONED_MODELS
    assert DEFAULT_GROQ_MODEL in CURRENT_MODELS


async def test_a_switched_off_model_is_agent_unavailable_naming_it(
    start_groq: StartGroq, standin: GroqStandIn
) -> None:
    live = await start_groq(groq_model=SWITCHED_OFF)
    alice = new_client(live)

    first = await send_failing(alice, "add a task to buy milk")
    second = await send_failing(alice, "list my tasks")

    assert code_of(first) == code_of(second) == "AGENT_UNAVAILABLE"
    message = first["errors"][0]["message"]
    assert SWITCHED_OFF in message
    assert "GROQ_MODEL" in message
    assert "model_decommissioned" in message
    # asked once: the second turn fails without another request
    assert [r.model for r in standin.chat_requests] == [SWITCHED_OFF]
    # the user's messages are kept, each in its conversation, with no reply
    conversations = await conversations_of(alice)
    assert sorted(
        [(m["node"]["role"], m["node"]["content"]) for m in c["messages"]["edges"]]
        for c in conversations
    ) == [[("USER", "add a task to buy milk")], [("USER", "list my tasks")]]
    assert await tasks_of(alice) == []


async def test_an_unknown_model_is_agent_unavailable_naming_it(
    start_groq: StartGroq, standin: GroqStandIn
) -> None:
    standin.strict_models = True
    live = await start_groq(groq_model="openai/gpt-oss-9000")
    alice = new_client(live)

    payload = await send_failing(alice, "add a task to buy milk")

    assert code_of(payload) == "AGENT_UNAVAILABLE"
    message = payload["errors"][0]["message"]
    assert '"openai/gpt-oss-9000"' in message
    assert "model_not_found" in message
    assert "GROQ_MODEL" in message
    assert len(standin.chat_requests) == 1
    assert await only_conversation_messages(alice) == [("USER", "add a task to buy milk")]


async def test_fallback_models_are_tried_in_order_and_the_reply_says_which_answered(
    start_groq: StartGroq, standin: GroqStandIn, database_urls: dict[str, str], backend: str
) -> None:
    standin.strict_models = True
    live = await start_groq(
        groq_model=SWITCHED_OFF, groq_fallback_models="no-such-model, openai/gpt-oss-20b"
    )
    alice = new_client(live)
    standin.script(tool_calls(call("add_task", {"title": "buy milk"})), text("Added."))

    first = await send(alice, "add a task to buy milk")
    standin.script(text("Hello again."))
    second = await send(alice, "hello", first["conversation"]["id"])

    assert first["message"]["content"] == "Added."
    assert second["message"]["content"] == "Hello again."
    assert [r.model for r in standin.chat_requests] == [
        SWITCHED_OFF,
        "no-such-model",
        "openai/gpt-oss-20b",
        "openai/gpt-oss-20b",
        "openai/gpt-oss-20b",  # the second turn goes straight to the model that answered
    ]
    meta = await stored_metadata(database_urls[backend], second["message"]["id"])
    assert meta["model"] == "openai/gpt-oss-20b"
    assert await tasks_of(alice) == [("buy milk", "PENDING")]


async def test_a_switched_off_model_is_logged_once_naming_model_and_setting(
    standin: GroqStandIn,
) -> None:
    provider = GroqProvider(API_KEY, model=SWITCHED_OFF, base_url=standin.base_url)
    messages = [{"role": "user", "content": "hi"}]
    try:
        with capture_logs() as logs:
            for _ in range(2):
                with pytest.raises(Exception, match=SWITCHED_OFF):
                    await provider.complete(messages, [])
    finally:
        await provider.aclose()

    gone = [entry for entry in logs if entry.get("model") == SWITCHED_OFF]
    assert len(gone) == 1
    assert gone[0]["log_level"] == "error"
    assert gone[0]["code"] == "model_decommissioned"
    assert "GROQ_MODEL" in gone[0]["event"]
    assert len(standin.chat_requests) == 1


# --- rate limits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [({"retry-after": "7"}, 7), ({"x-ratelimit-reset-tokens": "7.66s"}, 8)],
)
async def test_a_rate_limit_longer_than_the_turn_answers_at_once_with_retry_after(
    start_groq: StartGroq, standin: GroqStandIn, headers: dict[str, str], retry_after: int
) -> None:
    live = await start_groq(agent_timeout_seconds=3)
    alice = new_client(live)
    standin.script(error(429, headers=headers), text("too late"))

    payload = await send_failing(alice, "add a task to buy milk")

    # not AGENT_TIMEOUT: the turn did not sleep into its budget
    assert code_of(payload) == "AGENT_UNAVAILABLE"
    assert payload["errors"][0]["extensions"]["retryAfter"] == retry_after
    assert len(standin.chat_requests) == 1
    assert await only_conversation_messages(alice) == [("USER", "add a task to buy milk")]


async def test_a_rate_limit_that_fits_the_turn_is_retried_once(
    start_groq: StartGroq, standin: GroqStandIn
) -> None:
    live = await start_groq()
    alice = new_client(live)
    standin.script(
        error(429, headers=FAST_RETRY),
        tool_calls(call("add_task", {"title": "buy milk"})),
        text("Added."),
    )

    result = await send(alice, "add a task to buy milk")

    assert result["message"]["content"] == "Added."
    assert len(standin.chat_requests) == 3
    assert await tasks_of(alice) == [("buy milk", "PENDING")]


# --- what gpt-oss does -------------------------------------------------------------------


async def test_one_tool_call_per_generation_keeps_the_loop_going(
    start_groq: StartGroq, standin: GroqStandIn, database_urls: dict[str, str], backend: str
) -> None:
    live = await start_groq()
    alice = new_client(live)
    standin.script(
        tool_calls(call("add_task", {"title": "buy milk"})),
        tool_calls(call("add_task", {"title": "call mom"})),
        tool_calls(call("complete_task", {"title": "buy milk"})),
        text("Added two, finished one."),
    )

    result = await send(alice, "add buy milk and call mom, and buy milk is done")

    assert [c["name"] for c in result["message"]["toolCalls"]] == [
        "add_task",
        "add_task",
        "complete_task",
    ]
    assert all(c["ok"] for c in result["message"]["toolCalls"])
    assert await tasks_of(alice) == [("buy milk", "COMPLETED"), ("call mom", "PENDING")]
    requests = standin.chat_requests
    assert len(requests) == 4
    # each step sees every earlier call and its result
    assert [m["role"] for m in requests[3].messages[-6:]] == ["assistant", "tool"] * 3
    meta = await stored_metadata(database_urls[backend], result["message"]["id"])
    assert meta["steps"] == 4


async def test_reasoning_is_neither_shown_nor_replayed(
    start_groq: StartGroq, standin: GroqStandIn
) -> None:
    live = await start_groq()
    alice = new_client(live)
    standin.script(
        tool_calls(call("add_task", {"title": "buy milk"}), reasoning="SECRET-PLAN one"),
        text("Added buy milk.", reasoning="SECRET-PLAN two"),
    )
    result = await send(alice, "add a task to buy milk")
    standin.script(text("Still there."))
    await send(alice, "thanks", result["conversation"]["id"])

    assert result["message"]["content"] == "Added buy milk."
    requests = standin.chat_requests
    assert len(requests) == 3
    for request in requests:
        assert "SECRET-PLAN" not in json.dumps(request.body)
        assert all("reasoning" not in m for m in request.messages)


async def test_streamed_reasoning_is_not_streamed_and_usage_comes_from_the_last_chunk(
    start_groq: StartGroq, standin: GroqStandIn, database_urls: dict[str, str], backend: str
) -> None:
    live = await start_groq()
    alice = new_client(live)
    standin.script(
        tool_calls(
            call("add_task", {"title": "buy milk"}),
            reasoning="SECRET-PLAN one",
            usage=Usage(prompt_tokens=40, completion_tokens=5),
        ),
        text("Added it.", reasoning="SECRET-PLAN two", usage=Usage(50, 3)),
    )

    async with connect(live.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe("s", SEND_MESSAGE_STREAM, {"input": {"content": "buy milk"}})
        events = await collect_stream(ws, "s")

    deltas = "".join(e["text"] for e in events if e["__typename"] == "ReplyDelta")
    assert deltas == "Added it."
    reply = events[-1]["message"]
    assert reply["content"] == "Added it."
    assert "SECRET-PLAN" not in json.dumps(standin.chat_requests[1].body)
    meta = await stored_metadata(database_urls[backend], reply["id"])
    assert meta["usage"] == {"prompt_tokens": 90, "completion_tokens": 8, "estimated": False}


async def test_tool_use_failed_is_retried_once(start_groq: StartGroq, standin: GroqStandIn) -> None:
    live = await start_groq()
    alice = new_client(live)
    standin.script(
        error(400, body=tool_use_failed('<function=add_task{"title": "buy milk"}>')),
        tool_calls(call("add_task", {"title": "buy milk"})),
        text("Added."),
    )

    result = await send(alice, "add a task to buy milk")

    assert result["message"]["content"] == "Added."
    assert len(standin.chat_requests) == 3
    assert standin.chat_requests[0].body == standin.chat_requests[1].body
    assert await tasks_of(alice) == [("buy milk", "PENDING")]


async def test_tool_use_failed_twice_is_a_clean_agent_unavailable(
    start_groq: StartGroq, standin: GroqStandIn
) -> None:
    live = await start_groq()
    alice = new_client(live)
    bad = error(400, body=tool_use_failed("<function=add_task>"))
    standin.script(bad, bad, text("never asked"))

    payload = await send_failing(alice, "add a task to buy milk")

    assert code_of(payload) == "AGENT_UNAVAILABLE"
    assert "tool call" in payload["errors"][0]["message"]
    assert "<function" not in json.dumps(payload)
    assert len(standin.chat_requests) == 2
    assert await only_conversation_messages(alice) == [("USER", "add a task to buy milk")]


# --- python main.py check ----------------------------------------------------------------


async def run_check(tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in Settings.model_fields and name != "PYTHONPATH"
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "main.py"),
        "check",
        cwd=tmp_path,  # no stray .env is read
        env={**inherited, "ENVIRONMENT": "test", **env, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    assert b"Traceback" not in stderr, stderr.decode()
    return process.returncode, stdout.decode().splitlines()


async def test_check_passes_on_a_migrated_database_and_a_listed_model(
    standin: GroqStandIn, database_urls: dict[str, str], backend: str, tmp_path: Path
) -> None:
    code, lines = await run_check(
        tmp_path,
        DATABASE_URL=database_urls[backend],
        GROQ_API_KEY=API_KEY,
        GROQ_BASE_URL=standin.base_url,
    )

    assert code == 0, lines
    assert [line.split(":")[0] for line in lines] == [
        "ok   database",
        "ok   migrations",
        "ok   groq",
        "ok   model",
    ]
    assert DEFAULT_GROQ_MODEL in lines[3]
    assert API_KEY not in "\n".join(lines)
    assert [r.path for r in standin.requests] == ["/openai/v1/models"]


async def test_check_fails_on_a_model_groq_does_not_list(
    standin: GroqStandIn, database_urls: dict[str, str], backend: str, tmp_path: Path
) -> None:
    code, lines = await run_check(
        tmp_path,
        DATABASE_URL=database_urls[backend],
        GROQ_API_KEY=API_KEY,
        GROQ_BASE_URL=standin.base_url,
        GROQ_MODEL=SWITCHED_OFF,
    )

    assert code == 1
    assert lines[-1].startswith("FAIL model:")
    assert SWITCHED_OFF in lines[-1]
    assert "GROQ_MODEL" in lines[-1]


async def test_check_fails_on_a_rejected_key(
    standin: GroqStandIn, database_urls: dict[str, str], backend: str, tmp_path: Path
) -> None:
    standin.expected_api_key = "another-key"
    try:
        code, lines = await run_check(
            tmp_path,
            DATABASE_URL=database_urls[backend],
            GROQ_API_KEY=API_KEY,
            GROQ_BASE_URL=standin.base_url,
        )
    finally:
        standin.expected_api_key = None

    assert code == 1
    assert lines[-1] == "FAIL groq: answered HTTP 401"


async def test_check_fails_on_an_unmigrated_database_without_a_key(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / f'empty-{uuid.uuid4()}.db'}"
    code, lines = await run_check(tmp_path, DATABASE_URL=url)

    assert code == 1
    assert lines[0] == "ok   database: reachable"
    assert lines[1].startswith("FAIL migrations: at none")
    assert lines[2].startswith("ok   groq: skipped")


async def test_check_fails_on_an_unreachable_database(tmp_path: Path) -> None:
    code, lines = await run_check(
        tmp_path, DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:9/nothing"
    )

    assert code == 1
    assert lines[0].startswith("FAIL database: unreachable")
