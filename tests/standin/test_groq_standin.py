"""Proves the Groq stand-in speaks the wire format the real ``groq`` SDK parses.

Every test drives ``groq.AsyncGroq`` itself against the stand-in, so a shape mistake in the
stand-in fails here rather than as a confusing failure in the integration tests.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import groq
import httpx
import pytest

from .groq_standin import (
    CHAT_COMPLETIONS_PATH,
    GroqStandIn,
    Usage,
    call,
    error,
    repeat,
    slow,
    text,
    tool_calls,
)

MODEL = "openai/gpt-oss-120b"
MESSAGES: list[Any] = [
    {"role": "system", "content": "You manage tasks."},
    {"role": "user", "content": "Add buy milk and call mom"},
]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "create_task",
            "description": "Create a task",
            "parameters": {
                "type": "object",
                "properties": {"title": {"type": "string"}},
                "required": ["title"],
            },
        },
    }
]


@pytest.fixture(scope="module")
def server() -> Iterator[GroqStandIn]:
    with GroqStandIn() as standin:
        yield standin


@pytest.fixture
def standin(server: GroqStandIn) -> Iterator[GroqStandIn]:
    server.reset()
    server.expected_api_key = None
    yield server
    server.reset()
    server.expected_api_key = None


@pytest.fixture
async def client(standin: GroqStandIn) -> AsyncIterator[groq.AsyncGroq]:
    sdk = groq.AsyncGroq(api_key="test-key", base_url=standin.base_url, max_retries=0)
    yield sdk
    await sdk.close()


async def _collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


def _accumulate_tool_calls(chunks: list[Any]) -> list[dict[str, str]]:
    """Merge streamed tool-call deltas by index, the way a streaming consumer must."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                if delta.id:
                    entry["id"] = delta.id
                if delta.function and delta.function.name:
                    entry["name"] += delta.function.name
                if delta.function and delta.function.arguments:
                    entry["arguments"] += delta.function.arguments
    return [calls[i] for i in sorted(calls)]


async def test_text_reply_non_streamed(standin: GroqStandIn, client: groq.AsyncGroq) -> None:
    standin.script(text("Hello there, friend."))

    reply = await client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert reply.object == "chat.completion"
    assert reply.model == MODEL
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello there, friend."
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 3
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 3
    assert standin.pending == 0


async def test_text_reply_streamed(standin: GroqStandIn, client: groq.AsyncGroq) -> None:
    content = "Sure!  I added  two tasks:\nbuy milk, call mom. "
    standin.script(text(content, usage=Usage(prompt_tokens=40, completion_tokens=12)))

    stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    chunks = await _collect(stream)

    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(pieces) >= 5
    assert "".join(pieces) == content
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.x_groq is not None
    assert last.x_groq.usage is not None
    assert (last.x_groq.usage.prompt_tokens, last.x_groq.usage.completion_tokens) == (40, 12)
    assert last.x_groq.usage.total_tokens == 52
    assert last.usage is None  # only with stream_options.include_usage
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


async def test_stream_include_usage_adds_top_level_usage(
    standin: GroqStandIn, client: groq.AsyncGroq
) -> None:
    standin.script(text("Hi."))
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stream=True,
        extra_body={"stream_options": {"include_usage": True}},
    )
    chunks = await _collect(stream)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 1


async def test_two_tool_calls_non_streamed(standin: GroqStandIn, client: groq.AsyncGroq) -> None:
    standin.script(
        tool_calls(
            call("create_task", {"title": "Buy milk"}, id="call_a"),
            call("create_task", {"title": "Call mom", "due": None}),
        )
    )

    reply = await client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)

    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [c.id for c in calls] == ["call_a", "call_standin_1"]
    assert all(c.type == "function" and c.function.name == "create_task" for c in calls)
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"title": "Buy milk"},
        {"title": "Call mom", "due": None},
    ]


async def test_two_tool_calls_streamed(standin: GroqStandIn, client: groq.AsyncGroq) -> None:
    standin.script(
        tool_calls(
            call("create_task", {"title": "Buy milk and bread"}, id="call_a"),
            call("complete_task", {"task_id": 42}, id="call_b"),
        )
    )

    stream = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=TOOLS, stream=True
    )
    chunks = await _collect(stream)

    argument_chunks = [
        d
        for c in chunks
        for d in c.choices[0].delta.tool_calls or []
        if d.index == 0 and d.function and d.function.arguments
    ]
    assert len(argument_chunks) > 1, "arguments should arrive split over several chunks"
    calls = _accumulate_tool_calls(chunks)
    assert [(c["id"], c["name"]) for c in calls] == [
        ("call_a", "create_task"),
        ("call_b", "complete_task"),
    ]
    assert [json.loads(c["arguments"]) for c in calls] == [
        {"title": "Buy milk and bread"},
        {"task_id": 42},
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("stream", [False, True])
async def test_malformed_arguments_arrive_verbatim(
    standin: GroqStandIn, client: groq.AsyncGroq, stream: bool
) -> None:
    raw = '{"title": "Buy milk",'
    standin.script(tool_calls(call("create_task", raw, id="call_x")))

    if stream:
        chunks = await _collect(
            await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, tools=TOOLS, stream=True
            )
        )
        arguments = _accumulate_tool_calls(chunks)[0]["arguments"]
    else:
        reply = await client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
        arguments = (reply.choices[0].message.tool_calls or [])[0].function.arguments

    assert arguments == raw


@pytest.mark.parametrize(
    ("step", "exc_type"),
    [
        (error(429, headers={"retry-after": "7"}), groq.RateLimitError),
        (error(500), groq.InternalServerError),
        (error(503, message="over capacity"), groq.InternalServerError),
        (error(401), groq.AuthenticationError),
        (
            error(400, {"error": {"message": "bad tools", "type": "x", "code": "y"}}),
            groq.BadRequestError,
        ),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_error_steps_map_to_sdk_exceptions(
    standin: GroqStandIn,
    client: groq.AsyncGroq,
    step: Any,
    exc_type: type[groq.APIStatusError],
    stream: bool,
) -> None:
    standin.script(step)

    with pytest.raises(exc_type) as info:
        await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=stream)

    assert info.value.status_code == step.status
    assert step.body["error"]["message"] in str(info.value)
    for name, value in step.headers.items():
        assert info.value.response.headers[name] == value


async def test_expected_api_key_rejects_other_keys(
    standin: GroqStandIn, client: groq.AsyncGroq
) -> None:
    standin.expected_api_key = "right-key"
    standin.script(text("for the right key"))

    with pytest.raises(groq.AuthenticationError):
        await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert standin.pending == 1, "a rejected request must not consume a step"

    async with groq.AsyncGroq(
        api_key="right-key", base_url=standin.base_url, max_retries=0
    ) as good:
        reply = await good.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert reply.choices[0].message.content == "for the right key"


async def test_slow_reply_beyond_client_timeout(
    standin: GroqStandIn, client: groq.AsyncGroq
) -> None:
    standin.script(slow(1.0, text("too late")), text("next"))

    with pytest.raises(groq.APITimeoutError):
        await client.chat.completions.create(model=MODEL, messages=MESSAGES, timeout=0.2)

    reply = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert reply.choices[0].message.content == "next"


async def test_slow_reply_does_not_block_other_requests(
    standin: GroqStandIn, client: groq.AsyncGroq
) -> None:
    standin.script(slow(0.4, text("late")), text("early"))

    started = time.monotonic()
    late = asyncio.create_task(client.chat.completions.create(model=MODEL, messages=MESSAGES))
    await standin.wait_for_requests(1)
    early = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert early.choices[0].message.content == "early"
    assert time.monotonic() - started < 0.35
    assert not late.done()
    assert (await late).choices[0].message.content == "late"


async def test_cancel_mid_stream(standin: GroqStandIn, client: groq.AsyncGroq) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    standin.script(text(words, stream_delay=0.02))

    stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    received = []
    async for chunk in stream:
        received.append(chunk.choices[0].delta.content)
        if len(received) == 3:
            break
    await stream.close()

    for _ in range(100):
        if standin.last_request.aborted:
            break
        await asyncio.sleep(0.01)
    assert standin.last_request.aborted


async def test_default_reply_and_script_forever(
    standin: GroqStandIn, client: groq.AsyncGroq
) -> None:
    reply = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert reply.choices[0].message.content == "OK."

    standin.script(text("first"))
    standin.script_forever(tool_calls(call("list_tasks", {})))
    contents = []
    for _ in range(4):
        reply = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
        message = reply.choices[0].message
        contents.append(message.content or (message.tool_calls or [])[0].function.name)
    assert contents == ["first", "list_tasks", "list_tasks", "list_tasks"]
    assert standin.pending == 1

    standin.reset()
    reply = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert reply.choices[0].message.content == "OK."
    assert repeat(text("x")).step == text("x")


async def test_requests_are_recorded(standin: GroqStandIn, client: groq.AsyncGroq) -> None:
    standin.script(text("one"), text("two"))

    await client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
    await client.chat.completions.create(model="other-model", messages=MESSAGES[:1], stream=True)

    first, second = standin.requests
    assert first.method == "POST"
    assert first.path == CHAT_COMPLETIONS_PATH
    assert first.model == MODEL
    assert first.messages == MESSAGES
    assert first.tools == TOOLS
    assert first.tool_names == ["create_task"]
    assert first.stream is False
    assert first.headers["authorization"] == "Bearer test-key"
    assert first.authorization == "Bearer test-key"
    assert first.headers["content-type"] == "application/json"
    assert second is standin.last_request
    assert second.model == "other-model"
    assert second.stream is True
    assert second.tools == []

    standin.reset()
    assert standin.requests == []
    with pytest.raises(LookupError):
        _ = standin.last_request


async def test_unknown_path_is_404(standin: GroqStandIn) -> None:
    async with httpx.AsyncClient(base_url=standin.base_url) as http:
        response = await http.post("/openai/v1/embeddings", json={"input": "x"})
        wrong_method = await http.get(CHAT_COMPLETIONS_PATH)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"
    assert wrong_method.status_code == 405
    assert [r.path for r in standin.requests] == ["/openai/v1/embeddings", CHAT_COMPLETIONS_PATH]
    assert standin.chat_requests == [standin.requests[1]]


def test_start_stop_and_restart() -> None:
    standin = GroqStandIn().start()
    first_url = standin.base_url
    with httpx.Client() as http:
        assert http.post(standin.chat_completions_url, json={}).status_code == 200
    standin.stop()
    with pytest.raises(RuntimeError):
        _ = standin.base_url
    with standin:
        assert standin.base_url.startswith("http://127.0.0.1:")
        with httpx.Client() as http:
            assert http.post(standin.chat_completions_url, json={}).status_code == 200
    assert first_url.startswith("http://127.0.0.1:")


def test_stop_wakes_pending_slow_reply() -> None:
    standin = GroqStandIn().start()
    standin.script_forever(slow(30, text("never")))
    errors: list[BaseException] = []

    def hit() -> None:
        try:
            httpx.post(standin.chat_completions_url, json={}, timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    worker = threading.Thread(target=hit)
    worker.start()
    deadline = time.monotonic() + 2
    while not standin.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    standin.stop()
    worker.join(timeout=5)
    assert time.monotonic() - started < 2
    assert len(errors) == 1
