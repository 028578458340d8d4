"""Regressions for races around a turn: a small pool, a delete during the turn,
concurrent sends against the rate limit, text no database takes, a dropped model stream."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import GraphQLClient, ServerFactory, token_for
from tests.live.test_websocket import SEND_MESSAGE_STREAM, create_conversation, next_data
from tests.live.ws_client import bearer, connect
from tests.standin.groq_standin import GroqStandIn, call, slow, text, tool_calls

SEND = """mutation($input: SendMessageInput!) { sendMessage(input: $input) {
  conversation { id } userMessage { id } message { id content } } }"""


def send(
    client: GraphQLClient, content: str, conversation_id: str | None = None
) -> Coroutine[Any, Any, dict[str, Any]]:
    payload: dict[str, object] = {"content": content}
    if conversation_id is not None:
        payload["conversationId"] = conversation_id
    return client.execute(SEND, {"input": payload})


@pytest.fixture
def standin() -> Iterator[GroqStandIn]:
    with GroqStandIn() as running:
        yield running


async def test_many_concurrent_turns_complete_on_a_small_pool(
    server_factory: ServerFactory,
) -> None:
    """Turn locks have a pool of their own: lock holders never wait on themselves."""
    live = await server_factory(db_pool_size=1)
    client = live.client(token_for(f"pool-{uuid.uuid4()}"))
    results = await asyncio.gather(*(send(client, f"add task: item {n}") for n in range(12)))
    assert [result.get("errors") for result in results] == [None] * 12
    tasks = await client.data("{ tasks { totalCount } }")
    assert tasks["tasks"]["totalCount"] == 12


async def test_a_conversation_deleted_during_a_turn_keeps_nothing_live(
    server_factory: ServerFactory, standin: GroqStandIn
) -> None:
    """The delete commits while the model thinks (nothing is locked yet); the turn's
    reply then finds the conversation gone and the whole unit rolls back, tasks too."""
    standin.script(slow(1.0, tool_calls(call("add_task", {"title": "buy milk"}))), text("Done."))
    live = await server_factory(
        agent_provider="groq", groq_api_key="k", groq_base_url=standin.base_url
    )
    client = live.client(token_for(f"delete-race-{uuid.uuid4()}"))
    conversation_id = await create_conversation(client)
    turn = asyncio.create_task(send(client, "add a task to buy milk", conversation_id))
    await standin.wait_for_requests(1, timeout=5)
    deleted = await client.execute(
        "mutation($id: ID!) { deleteConversation(input: {id: $id}) { deletedId } }",
        {"id": conversation_id},
    )
    result = await turn

    assert deleted.get("errors") is None
    gone = await client.data(
        "query($id: ID!) { conversation(id: $id) { id } }", {"id": conversation_id}
    )
    assert gone["conversation"] is None
    assert result["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert (await client.data("{ tasks { totalCount } }"))["tasks"]["totalCount"] == 0


async def test_concurrent_sends_cannot_pass_the_rate_limit(server_factory: ServerFactory) -> None:
    live = await server_factory(rate_limit_per_minute=2)
    client = live.client(token_for(f"burst-{uuid.uuid4()}"))
    results = await asyncio.gather(*(send(client, f"add task: burst {n}") for n in range(10)))
    codes = sorted(
        result["errors"][0]["extensions"]["code"] if result.get("errors") else "ok"
        for result in results
    )
    assert codes == ["RATE_LIMITED"] * 8 + ["ok"] * 2


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (
            "mutation($t: String!) { createTask(input: {title: $t}) { task { id } } }",
            '{"t": "milk \\ud800"}',
        ),
        (
            "mutation($c: String!) { sendMessage(input: {content: $c}) { message { id } } }",
            '{"c": "add task: milk \\udfff"}',
        ),
    ],
)
async def test_lone_surrogates_are_bad_user_input(
    server_factory: ServerFactory, query: str, variables: str
) -> None:
    live = await server_factory()
    token = token_for(f"surrogate-{uuid.uuid4()}")
    body = f'{{"query": {json.dumps(query)}, "variables": {variables}}}'
    async with httpx.AsyncClient(base_url=live.url) as http:
        response = await http.post(
            "/graphql",
            content=body.encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        client = GraphQLClient(http, token)
        counts = await client.data("{ tasks { totalCount } conversations { totalCount } }")
    assert counts == {"tasks": {"totalCount": 0}, "conversations": {"totalCount": 0}}


async def test_a_model_stream_dropped_midway_is_agent_unavailable(
    server_factory: ServerFactory, standin: GroqStandIn
) -> None:
    standin.script(text(" ".join(f"word{n}" for n in range(40)), stream_delay=0.2))
    live = await server_factory(
        agent_provider="groq", groq_api_key="k", groq_base_url=standin.base_url
    )
    token = token_for(f"dropped-{uuid.uuid4()}")
    client = live.client(token)
    conversation_id = await create_conversation(client)
    async with connect(live.ws_url, bearer(token)) as ws:
        stream_input = {"conversationId": conversation_id, "content": "tell me a story"}
        await ws.subscribe("s", SEND_MESSAGE_STREAM, {"input": stream_input})
        saved = next_data(await ws.next_message(), "s")["sendMessageStream"]
        assert saved["__typename"] == "UserMessageSaved"
        next_data(await ws.next_message(), "s")  # the first piece of the reply
        await asyncio.to_thread(standin.stop)  # the provider's connection drops
        codes = []
        while True:
            message = await ws.next_message()
            if message["type"] == "next" and message["payload"].get("errors"):
                codes = [e["extensions"]["code"] for e in message["payload"]["errors"]]
                break
            assert message["type"] == "next", message
    assert codes == ["AGENT_UNAVAILABLE"]
    stored = await client.data(
        "query($id: ID!) { conversation(id: $id) { messageCount } }", {"id": conversation_id}
    )
    assert stored["conversation"]["messageCount"] == 1


async def test_other_writes_do_not_wait_while_the_model_thinks(
    server_factory: ServerFactory, standin: GroqStandIn
) -> None:
    """Until its first tool call a turn holds no write lock: on SQLite, where that lock
    is the whole database's, another user's write goes ahead while the model thinks."""
    standin.script(slow(2.0, text("Hello!")))
    live = await server_factory(
        agent_provider="groq", groq_api_key="k", groq_base_url=standin.base_url
    )
    alice = live.client(token_for(f"thinker-{uuid.uuid4()}"))
    bob = live.client(token_for(f"writer-{uuid.uuid4()}"))
    await bob.data("{ me { id } }")
    turn = asyncio.create_task(send(alice, "say hello"))
    await standin.wait_for_requests(1, timeout=5)

    created = await bob.data('mutation { createTask(input: {title: "meanwhile"}) { task { id } } }')

    assert created["createTask"]["task"]["id"]
    assert not turn.done()  # bob's write finished while alice's model was still thinking
    result = await turn
    assert result["data"]["sendMessage"]["message"]["content"] == "Hello!"
