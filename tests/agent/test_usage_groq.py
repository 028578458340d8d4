"""Usage through the real groq SDK against the local stand-in: the provider's counts
summed over a turn's steps (plain and streamed), and what a turn spent when it was
cancelled mid-stream (estimated) or failed at a later step."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from core.config import DEFAULT_GROQ_MODEL
from db.engine import create_engine
from db.models import AgentRun, RunStatus, User
from tests.conftest import GraphQLClient, LiveServer, ServerFactory, token_for
from tests.live.test_websocket import eventually, next_data
from tests.live.ws_client import bearer, connect
from tests.standin.groq_standin import GroqStandIn, Usage, call, error, text, tool_calls

USAGE_FIELDS = "usage { promptTokens completionTokens totalTokens model latencyMs estimated }"
SEND = f"""
mutation($input: SendMessageInput!) {{
  sendMessage(input: $input) {{ message {{ id {USAGE_FIELDS} }} }}
}}"""
STREAM = f"""
subscription($input: SendMessageInput!) {{
  sendMessageStream(input: $input) {{
    __typename
    ... on ReplyDelta {{ text }}
    ... on ReplyCompleted {{ message {{ id {USAGE_FIELDS} }} }}
  }}
}}"""
TOTALS = "{ me { usage { turns promptTokens completionTokens totalTokens } } }"


@pytest.fixture(scope="module")
def groq_standin() -> Iterator[GroqStandIn]:
    with GroqStandIn() as standin:
        yield standin


@pytest.fixture
def standin(groq_standin: GroqStandIn) -> GroqStandIn:
    groq_standin.reset()
    return groq_standin


@pytest.fixture
async def groq_server(server_factory: ServerFactory, standin: GroqStandIn) -> LiveServer:
    return await server_factory(
        agent_provider="groq",
        groq_api_key="test-key",
        groq_base_url=standin.base_url,
        agent_timeout_seconds=10,
    )


def new_client(live: LiveServer) -> tuple[GraphQLClient, str]:
    subject = f"usage-{uuid.uuid4()}"
    return live.client(token_for(subject)), subject


async def totals(client: GraphQLClient) -> dict[str, int]:
    result: dict[str, int] = (await client.data(TOTALS))["me"]["usage"]
    return result


async def runs_of(database_url: str, subject: str) -> list[AgentRun]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(AgentRun)
                .join(User, User.id == AgentRun.user_id)
                .where(User.subject == subject)
            )
            return [AgentRun(**row._mapping) for row in rows]
    finally:
        await engine.dispose()


def two_steps() -> tuple[Any, Any]:
    return (
        tool_calls(call("add_task", {"title": "buy milk"}), usage=Usage(120, 17)),
        text("I added buy milk.", usage=Usage(150, 9)),
    )


async def test_usage_is_the_providers_counts_summed_over_steps(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    client, _ = new_client(groq_server)
    standin.script(*two_steps())

    reply = (await client.data(SEND, {"input": {"content": "buy milk"}}))["sendMessage"]["message"]

    usage = reply["usage"]
    assert {k: usage[k] for k in ("promptTokens", "completionTokens", "totalTokens")} == {
        "promptTokens": 270,
        "completionTokens": 26,
        "totalTokens": 296,
    }
    assert usage["estimated"] is False
    assert usage["model"] == DEFAULT_GROQ_MODEL
    assert usage["latencyMs"] >= 0
    assert await totals(client) == {
        "turns": 1,
        "promptTokens": 270,
        "completionTokens": 26,
        "totalTokens": 296,
    }


async def test_streamed_usage_comes_from_each_steps_last_chunk(
    groq_server: LiveServer, standin: GroqStandIn
) -> None:
    client, _ = new_client(groq_server)
    standin.script(*two_steps())

    async with connect(groq_server.ws_url, bearer(client.token or "")) as ws:
        await ws.subscribe("s", STREAM, {"input": {"content": "buy milk"}})
        while True:
            event = next_data(await ws.next_message(), "s")["sendMessageStream"]
            if event["__typename"] == "ReplyCompleted":
                break

    usage = event["message"]["usage"]
    assert (usage["promptTokens"], usage["completionTokens"], usage["estimated"]) == (
        270,
        26,
        False,
    )


async def test_a_stream_cancelled_midway_records_estimated_usage(
    groq_server: LiveServer, standin: GroqStandIn, database_urls: dict[str, str], backend: str
) -> None:
    client, subject = new_client(groq_server)
    standin.script(
        tool_calls(call("add_task", {"title": "buy milk"}), usage=Usage(40, 5)),
        text(" ".join(f"word{n}" for n in range(40)), stream_delay=0.2, usage=Usage(999, 999)),
    )

    async with connect(groq_server.ws_url, bearer(client.token or "")) as ws:
        await ws.subscribe("s", STREAM, {"input": {"content": "buy milk, then a story"}})
        while next_data(await ws.next_message(), "s")["sendMessageStream"]["__typename"] != (
            "ReplyDelta"
        ):
            pass
        await ws.complete("s")  # the user stops listening: a stop (issue 12)

    async def recorded() -> bool:
        return (await totals(client))["turns"] == 1

    await eventually(recorded, timeout=5)
    [run] = await runs_of(database_urls[backend], subject)
    assert run.status == RunStatus.CANCELLED
    assert run.reply_id is not None  # the STOPPED reply, which keeps what was generated
    assert run.usage_estimated is True
    # the first step's counts, plus an estimate of the cut-off step (its prompt was sent
    # and some text came back; the counts on its last chunk never did)
    assert run.prompt_tokens is not None
    assert run.completion_tokens is not None
    assert 40 < run.prompt_tokens < 999
    assert 5 < run.completion_tokens < 999
    assert await totals(client) == {
        "turns": 1,
        "promptTokens": run.prompt_tokens,
        "completionTokens": run.completion_tokens,
        "totalTokens": run.prompt_tokens + run.completion_tokens,
    }
    # a stop keeps the effects of the tool calls already made (issue 12)
    assert (await client.data("{ tasks { totalCount } }"))["tasks"]["totalCount"] == 1


async def test_a_turn_failing_at_a_later_step_records_what_the_earlier_ones_spent(
    groq_server: LiveServer, standin: GroqStandIn, database_urls: dict[str, str], backend: str
) -> None:
    client, subject = new_client(groq_server)
    standin.script(
        tool_calls(call("add_task", {"title": "buy milk"}), usage=Usage(40, 5)),
        error(401),  # refused at once: that step spent nothing
    )

    code = await client.error_code(SEND, {"input": {"content": "buy milk"}})

    assert code == "AGENT_UNAVAILABLE"
    [run] = await runs_of(database_urls[backend], subject)
    assert (run.status, run.error_code) == (RunStatus.FAILED, "AGENT_UNAVAILABLE")
    assert (run.prompt_tokens, run.completion_tokens, run.usage_estimated) == (40, 5, False)
    assert await totals(client) == {
        "turns": 1,
        "promptTokens": 40,
        "completionTokens": 5,
        "totalTokens": 45,
    }
