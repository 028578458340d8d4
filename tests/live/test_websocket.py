"""Subscriptions over graphql-transport-ws: auth, messageAdded, sendMessageStream,
a stream completed (stop) or dropped (the turn runs on) and the per-connection /
per-user limits."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
import websockets

from tests.conftest import GraphQLClient, LiveServer, ServerFactory, token_for
from tests.live.ws_client import GraphQLWebSocket, Message, SocketClosed, bearer, connect
from tests.standin.groq_standin import GroqStandIn, text

MESSAGE_ADDED = """
subscription MessageAdded($conversationId: ID!) {
  messageAdded(conversationId: $conversationId) { id role content }
}
"""

SEND_MESSAGE = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) {
    conversation { id messageCount }
    userMessage { id role content }
    message { id role content }
  }
}
"""

SEND_MESSAGE_STREAM = """
subscription Stream($input: SendMessageInput!) {
  sendMessageStream(input: $input) {
    __typename
    ... on UserMessageSaved { message { id role content conversation { id } } }
    ... on ReplyStarted { message { id role content status } }
    ... on ReplyDelta { text sequence offset }
    ... on ToolCallCompleted { toolCall { name arguments ok } sequence }
    ... on ReplyCompleted { message { id role content status toolCalls { name } } }
  }
}
"""

CREATE_CONVERSATION = """
mutation Create($title: String) {
  createConversation(input: {title: $title}) { conversation { id } }
}
"""

CONVERSATION_MESSAGES = """
query Messages($id: ID!) {
  conversation(id: $id) { messageCount messages { edges { node { role content } } } }
}
"""

REGENERATE_REPLY = """
mutation Regenerate($conversationId: ID!) {
  regenerateReply(input: {conversationId: $conversationId}) { message { id role content } }
}
"""


# --- helpers ---------------------------------------------------------------------------


def new_token() -> str:
    return token_for(f"ws-{uuid.uuid4()}")


async def create_conversation(client: GraphQLClient) -> str:
    data = await client.data(CREATE_CONVERSATION, {"title": "live"})
    conversation_id: str = data["createConversation"]["conversation"]["id"]
    return conversation_id


async def send_message(client: GraphQLClient, conversation_id: str, content: str) -> dict[str, Any]:
    data = await client.data(
        SEND_MESSAGE, {"input": {"conversationId": conversation_id, "content": content}}
    )
    payload: dict[str, Any] = data["sendMessage"]
    return payload


async def conversation_messages(client: GraphQLClient, conversation_id: str) -> dict[str, Any]:
    data = await client.data(CONVERSATION_MESSAGES, {"id": conversation_id})
    conversation: dict[str, Any] = data["conversation"]
    return conversation


def next_data(message: Message, operation_id: str) -> dict[str, Any]:
    """The data of a `next` message for the operation; fails on anything else."""
    assert message.get("id") == operation_id, message
    assert message["type"] == "next", message
    assert "errors" not in message["payload"], message
    data: dict[str, Any] = message["payload"]["data"]
    return data


async def operation_error_codes(ws: GraphQLWebSocket, operation_id: str) -> list[str]:
    """The error codes an operation ended with (a `next` with errors, or an `error`),
    checking that nothing but the error was delivered and the operation is over."""
    message = await ws.next_message()
    assert message.get("id") == operation_id, message
    if message["type"] == "error":
        return [error.get("extensions", {}).get("code") for error in message["payload"]]
    assert message["type"] == "next", message
    assert message["payload"].get("data") is None, message
    errors = message["payload"]["errors"]
    assert await ws.next_message() == {"id": operation_id, "type": "complete"}
    return [error["extensions"]["code"] for error in errors]


async def wait_until_live(
    ws: GraphQLWebSocket, operation_id: str, sender: GraphQLClient, conversation_id: str
) -> None:
    """`messageAdded` has no "subscribed" acknowledgement: send warm-up messages until
    the reply to one of them is delivered, so that the subscription surely listens."""
    for attempt in range(5):
        sent = await send_message(sender, conversation_id, f"warm-up {attempt}")
        reply_id = sent["message"]["id"]
        try:
            while True:
                data = next_data(await ws.next_message(timeout=1.0), operation_id)
                if data["messageAdded"]["id"] == reply_id:
                    return
        except TimeoutError:
            continue
    raise AssertionError("the messageAdded subscription never delivered a warm-up reply")


async def collect_stream(ws: GraphQLWebSocket, operation_id: str) -> list[dict[str, Any]]:
    """Every event of a sendMessageStream operation until it completes."""
    events: list[dict[str, Any]] = []
    while True:
        message = await ws.next_message()
        if message == {"id": operation_id, "type": "complete"}:
            return events
        events.append(next_data(message, operation_id)["sendMessageStream"])


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


# --- authentication --------------------------------------------------------------------


@pytest.mark.parametrize("key", ["authorization", "Authorization", "AUTHORIZATION"])
async def test_token_in_connection_init_payload_is_acknowledged(
    server: LiveServer, key: str
) -> None:
    async with connect(server.ws_url, {key: f"Bearer {new_token()}"}) as ws:
        assert ws.acknowledged
        assert ws.close_code is None


async def test_token_in_upgrade_request_header_is_acknowledged(server: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {new_token()}"}
    async with connect(server.ws_url, headers=headers) as ws:
        assert ws.acknowledged


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(None, id="missing"),
        pytest.param({}, id="empty-payload"),
        pytest.param({"authorization": "Bearer not-a-jwt"}, id="garbage"),
        pytest.param({"authorization": "Basic dXNlcjpwYXNz"}, id="not-bearer"),
        pytest.param(bearer(token_for("ws-expired", ttl=timedelta(minutes=-5))), id="expired"),
        pytest.param(
            bearer(token_for("ws-forged", jwt_secret="another-secret-" + "y" * 40)),
            id="wrong-key",
        ),
    ],
)
async def test_socket_without_a_valid_token_is_closed_with_4403(
    server: LiveServer, payload: dict[str, str] | None
) -> None:
    async with connect(server.ws_url, payload) as ws:
        assert not ws.acknowledged
        assert ws.close_code == 4403


async def test_subscription_sent_with_a_bad_token_never_runs(
    server: LiveServer, alice: GraphQLClient
) -> None:
    conversation_id = await create_conversation(alice)
    async with connect(server.ws_url, handshake=False) as ws:
        # a client that does not wait for the ack: the subscription must not run
        await ws.init({"authorization": "Bearer not-a-jwt"})
        await ws.subscribe("1", MESSAGE_ADDED, {"conversationId": conversation_id})
        await send_message(alice, conversation_id, "list my tasks")
        with pytest.raises(SocketClosed) as closed:
            await ws.next_message()
    assert closed.value.code == 4403


async def test_socket_is_closed_with_4403_when_the_token_expires(
    server_factory: ServerFactory,
) -> None:
    """The socket closes when the token does, with the same clock leeway as verification."""
    strict = await server_factory(jwt_leeway_seconds=1)
    token = token_for(f"ws-{uuid.uuid4()}", ttl=timedelta(seconds=2))
    async with connect(strict.ws_url, bearer(token)) as ws:
        assert ws.acknowledged
        assert await ws.wait_closed(timeout=6) == 4403


# --- messageAdded ----------------------------------------------------------------------


async def test_message_added_delivers_the_question_then_the_reply(
    server: LiveServer, alice: GraphQLClient
) -> None:
    conversation_id = await create_conversation(alice)
    async with connect(server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe("1", MESSAGE_ADDED, {"conversationId": conversation_id})
        await wait_until_live(ws, "1", alice, conversation_id)

        sent = await send_message(alice, conversation_id, "add a task to buy milk")

        question = next_data(await ws.next_message(), "1")["messageAdded"]
        reply = next_data(await ws.next_message(), "1")["messageAdded"]
    assert question == {
        "id": sent["userMessage"]["id"],
        "role": "USER",
        "content": "add a task to buy milk",
    }
    assert reply == sent["message"]
    assert reply["role"] == "ASSISTANT"
    assert "buy milk" in reply["content"]


async def test_other_users_conversation_is_not_found_and_delivers_nothing(
    server: LiveServer, alice: GraphQLClient, bob: GraphQLClient
) -> None:
    conversation_id = await create_conversation(alice)
    async with connect(server.ws_url, bearer(bob.token or "")) as ws:
        await ws.subscribe("1", MESSAGE_ADDED, {"conversationId": conversation_id})
        assert await operation_error_codes(ws, "1") == ["NOT_FOUND"]


async def test_message_added_with_a_malformed_id_is_bad_user_input(
    server: LiveServer, alice: GraphQLClient
) -> None:
    async with connect(server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe("1", MESSAGE_ADDED, {"conversationId": "not-an-id"})
        assert await operation_error_codes(ws, "1") == ["BAD_USER_INPUT"]


async def test_regenerated_reply_is_delivered(server: LiveServer, alice: GraphQLClient) -> None:
    conversation_id = await create_conversation(alice)
    async with connect(server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe("1", MESSAGE_ADDED, {"conversationId": conversation_id})
        await wait_until_live(ws, "1", alice, conversation_id)

        data = await alice.data(REGENERATE_REPLY, {"conversationId": conversation_id})

        delivered = next_data(await ws.next_message(), "1")["messageAdded"]
    assert delivered == data["regenerateReply"]["message"]
    assert delivered["role"] == "ASSISTANT"


# --- sendMessageStream -----------------------------------------------------------------


def assert_well_formed_stream(events: list[dict[str, Any]], content: str) -> dict[str, Any]:
    """UserMessageSaved, ReplyStarted (the reply stored STREAMING), then deltas / tool calls
    numbered 1, 2, 3, … with each delta's offset where it starts, then ReplyCompleted whose
    content is the deltas joined. Returns the completed reply."""
    kinds = [event["__typename"] for event in events]
    assert kinds[:2] == ["UserMessageSaved", "ReplyStarted"], kinds
    assert kinds[-1] == "ReplyCompleted", kinds
    assert set(kinds[2:-1]) <= {"ReplyDelta", "ToolCallCompleted"}, kinds
    started = events[1]["message"]
    assert (started["status"], started["content"], started["role"]) == (
        "STREAMING",
        "",
        "ASSISTANT",
    )
    assert [event["sequence"] for event in events[2:-1]] == list(range(1, len(events) - 2))
    offset = 0
    for event in events[2:-1]:
        if event["__typename"] == "ReplyDelta":
            assert event["offset"] == offset, events
            offset += len(event["text"])
    assert events[-1]["message"]["id"] == started["id"]
    assert events[-1]["message"]["status"] == "COMPLETED"
    assert "ReplyDelta" in kinds, kinds
    saved = events[0]["message"]
    assert (saved["role"], saved["content"]) == ("USER", content)
    reply: dict[str, Any] = events[-1]["message"]
    assert reply["role"] == "ASSISTANT"
    deltas = "".join(event["text"] for event in events if event["__typename"] == "ReplyDelta")
    assert deltas == reply["content"]
    return reply


async def test_streamed_turn_with_a_tool_call_arrives_in_order(
    server: LiveServer, alice: GraphQLClient
) -> None:
    async with connect(server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe(
            "s", SEND_MESSAGE_STREAM, {"input": {"content": "add a task to buy milk"}}
        )
        events = await collect_stream(ws, "s")
    reply = assert_well_formed_stream(events, "add a task to buy milk")
    tool_calls = [
        event["toolCall"] for event in events if event["__typename"] == "ToolCallCompleted"
    ]
    assert [(call["name"], call["arguments"]["title"], call["ok"]) for call in tool_calls] == [
        ("add_task", "buy milk", True)
    ]
    assert [call["name"] for call in reply["toolCalls"]] == ["add_task"]
    tasks = await alice.data("{ tasks { edges { node { title } } } }")
    assert tasks["tasks"]["edges"] == [{"node": {"title": "buy milk"}}]


async def test_streamed_list_reply_names_the_users_tasks(
    server: LiveServer, alice: GraphQLClient
) -> None:
    await alice.data('mutation { createTask(input: {title: "water the plants"}) { task { id } } }')
    async with connect(server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe("s", SEND_MESSAGE_STREAM, {"input": {"content": "list my tasks"}})
        events = await collect_stream(ws, "s")
    reply = assert_well_formed_stream(events, "list my tasks")
    assert "water the plants" in reply["content"]
    assert [call["name"] for call in reply["toolCalls"]] == ["list_tasks"]


async def test_streamed_turn_is_stored_like_send_message(
    server: LiveServer, alice: GraphQLClient
) -> None:
    async with connect(server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe("s", SEND_MESSAGE_STREAM, {"input": {"content": "list my tasks"}})
        events = await collect_stream(ws, "s")
    conversation_id = events[0]["message"]["conversation"]["id"]
    stored = await conversation_messages(alice, conversation_id)
    assert stored["messageCount"] == 2
    assert [edge["node"] for edge in stored["messages"]["edges"]] == [
        {"role": "USER", "content": "list my tasks"},
        {"role": "ASSISTANT", "content": events[-1]["message"]["content"]},
    ]


async def test_streamed_empty_message_is_bad_user_input(
    server: LiveServer, alice: GraphQLClient
) -> None:
    async with connect(server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe("s", SEND_MESSAGE_STREAM, {"input": {"content": "   "}})
        assert await operation_error_codes(ws, "s") == ["BAD_USER_INPUT"]


async def test_streamed_message_over_the_rate_limit_is_rate_limited(
    server_factory: ServerFactory,
) -> None:
    live = await server_factory(rate_limit_per_minute=1)
    token = new_token()
    client = live.client(token)
    await client.data(SEND_MESSAGE, {"input": {"content": "list my tasks"}})
    async with connect(live.ws_url, bearer(token)) as ws:
        await ws.subscribe("s", SEND_MESSAGE_STREAM, {"input": {"content": "list my tasks"}})
        message = await ws.next_message()
    assert message["type"] == "next", message
    (error,) = message["payload"]["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 1 <= error["extensions"]["retryAfter"] <= 60


async def test_streamed_client_message_id_is_idempotent_with_send_message(
    server: LiveServer, alice: GraphQLClient
) -> None:
    key = f"key-{uuid.uuid4()}"
    stream_input = {"content": "add a task to buy bread", "clientMessageId": key}
    async with connect(server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe("s", SEND_MESSAGE_STREAM, {"input": stream_input})
        events = await collect_stream(ws, "s")
    streamed_question, streamed_reply = events[0]["message"], events[-1]["message"]

    retried = await alice.data(SEND_MESSAGE, {"input": stream_input})

    payload = retried["sendMessage"]
    assert payload["userMessage"]["id"] == streamed_question["id"]
    assert payload["message"]["id"] == streamed_reply["id"]
    assert payload["conversation"]["messageCount"] == 2
    tasks = await alice.data("{ tasks { totalCount } }")
    assert tasks["tasks"]["totalCount"] == 1


# --- a stream completed or dropped before its end ------------------------------------

SLOW_REPLY = " ".join(f"word{n}" for n in range(30))

REPLY_STREAM = """
subscription Join($messageId: ID!, $after: Int) {
  replyStream(messageId: $messageId, afterSequence: $after) {
    __typename
    ... on ReplyStarted { message { id status } }
    ... on ReplyDelta { text sequence offset }
    ... on ToolCallCompleted { toolCall { name } sequence }
    ... on ReplyCompleted { message { id role content status } }
  }
}
"""


async def start_slow_stream(
    server_factory: ServerFactory, standin: GroqStandIn, delay: float = 0.2
) -> tuple[LiveServer, GraphQLClient, str]:
    standin.script(text(SLOW_REPLY, stream_delay=delay))
    live = await server_factory(
        agent_provider="groq", groq_api_key="k", groq_base_url=standin.base_url
    )
    token = new_token()
    client = live.client(token)
    conversation_id = await create_conversation(client)
    return live, client, conversation_id


async def stream_until_first_delta(ws: GraphQLWebSocket, conversation_id: str) -> str:
    """Starts a streamed turn and reads it up to its first delta; the reply's id."""
    stream_input = {"conversationId": conversation_id, "content": "tell me a long story"}
    await ws.subscribe("s", SEND_MESSAGE_STREAM, {"input": stream_input})
    first = next_data(await ws.next_message(), "s")["sendMessageStream"]
    assert first["__typename"] == "UserMessageSaved"
    started = next_data(await ws.next_message(), "s")["sendMessageStream"]
    assert started["__typename"] == "ReplyStarted"
    assert started["message"]["status"] == "STREAMING"
    delta = next_data(await ws.next_message(), "s")["sendMessageStream"]
    assert delta == {"__typename": "ReplyDelta", "text": "word0 ", "sequence": 1, "offset": 0}
    reply_id: str = started["message"]["id"]
    return reply_id


async def test_completing_a_stream_stops_the_turn_and_keeps_a_stopped_reply(
    server_factory: ServerFactory,
) -> None:
    """Completing the subscription cancels the model request, as it always did, but what
    was generated stays: a STOPPED reply, listed after the question; the conversation
    takes the next turn normally (its lock and transaction are free)."""
    with GroqStandIn() as standin:
        live, client, conversation_id = await start_slow_stream(server_factory, standin)
        async with connect(live.ws_url, bearer(client.token or "")) as ws:
            reply_id = await stream_until_first_delta(ws, conversation_id)
            await ws.complete("s")

            async def model_request_aborted() -> bool:
                return standin.chat_requests[0].aborted

            await eventually(model_request_aborted, timeout=3)
        stopped = await client.data(
            "query($id: ID!) { node(id: $id) { ... on Message { status content } } }",
            {"id": reply_id},
        )
        assert stopped["node"]["status"] == "STOPPED"
        assert stopped["node"]["content"].startswith("word0 ")
        assert SLOW_REPLY.startswith(stopped["node"]["content"])
        stored = await conversation_messages(client, conversation_id)
        assert stored["messageCount"] == 2
        assert [edge["node"] for edge in stored["messages"]["edges"]] == [
            {"role": "USER", "content": "tell me a long story"},
            {"role": "ASSISTANT", "content": stopped["node"]["content"]},
        ]

        sent = await send_message(client, conversation_id, "and now?")
        assert sent["message"]["content"] == "OK."
        assert sent["conversation"]["messageCount"] == 4


async def test_a_dropped_socket_leaves_the_turn_running_and_a_client_rejoins_it(
    server_factory: ServerFactory,
) -> None:
    """The socket drops after the first delta: the turn runs on (the model request is
    not abandoned) and a new socket rejoins with `replyStream(afterSequence: 1)`: the
    rest arrives once, in order, and the text by offset is the stored content."""
    with GroqStandIn() as standin:
        live, client, conversation_id = await start_slow_stream(server_factory, standin, 0.05)
        async with connect(live.ws_url, bearer(client.token or "")) as ws:
            reply_id = await stream_until_first_delta(ws, conversation_id)
        async with connect(live.ws_url, bearer(client.token or "")) as ws:
            await ws.subscribe("r", REPLY_STREAM, {"messageId": reply_id, "after": 1})
            events = []
            while True:
                message = await ws.next_message()
                if message == {"id": "r", "type": "complete"}:
                    break
                events.append(next_data(message, "r")["replyStream"])
    assert not standin.chat_requests[0].aborted
    deltas, completed = events[:-1], events[-1]
    assert completed["__typename"] == "ReplyCompleted"
    assert completed["message"]["status"] == "COMPLETED"
    assert [delta["sequence"] for delta in deltas] == list(range(2, len(deltas) + 2))
    text_by_offset = "word0 "
    for delta in deltas:
        assert delta["offset"] == len(text_by_offset)
        text_by_offset += delta["text"]
    assert text_by_offset == completed["message"]["content"] == SLOW_REPLY
    stored = await conversation_messages(client, conversation_id)
    assert stored["messageCount"] == 2


# --- limits ----------------------------------------------------------------------------


async def test_subscription_over_the_per_connection_limit_gets_an_error(
    server_factory: ServerFactory,
) -> None:
    live = await server_factory(ws_max_subscriptions_per_connection=2)
    token = new_token()
    conversation_id = await create_conversation(live.client(token))
    async with connect(live.ws_url, bearer(token)) as ws:
        for operation_id in ("1", "2", "3"):
            await ws.subscribe(operation_id, MESSAGE_ADDED, {"conversationId": conversation_id})
        message = await ws.next_message()
    assert message["id"] == "3"
    assert message["type"] == "error"
    assert "limit" in message["payload"][0]["message"].lower()
    assert message["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_socket_over_the_per_user_connection_cap_is_closed_with_4403(
    server_factory: ServerFactory,
) -> None:
    live = await server_factory(ws_max_connections_per_user=2)
    token = new_token()
    async with connect(live.ws_url, bearer(token)) as first:
        async with connect(live.ws_url, bearer(token)) as second:
            assert first.acknowledged
            assert second.acknowledged
            async with connect(live.ws_url, bearer(token)) as third:
                assert not third.acknowledged
                assert third.close_code == 4403
            async with connect(live.ws_url, bearer(new_token())) as other_user:
                assert other_user.acknowledged

        async def slot_given_back() -> bool:
            async with connect(live.ws_url, bearer(token)) as again:
                return again.acknowledged

        await eventually(slot_given_back)


# --- resuming ------------------------------------------------------------------------

MESSAGE_ADDED_AFTER = """
subscription MessageAddedAfter($conversationId: ID!, $after: String) {
  messageAdded(conversationId: $conversationId, after: $after) { id role content }
}
"""


async def cursor_after(client: GraphQLClient, conversation_id: str, count: int) -> str:
    """The cursor of the conversation's `count`-th message."""
    page = await client.data(
        "query($id: ID!, $n: Int) { conversation(id: $id) { messages(first: $n) {"
        " pageInfo { endCursor } } } }",
        {"id": conversation_id, "n": count},
    )
    cursor: str = page["conversation"]["messages"]["pageInfo"]["endCursor"]
    return cursor


async def test_message_added_after_a_cursor_delivers_what_was_missed_first(
    server: LiveServer, alice: GraphQLClient
) -> None:
    """A client whose socket dropped resumes from the last message it saw."""
    conversation_id = await create_conversation(alice)
    seen = await send_message(alice, conversation_id, "add task: first")
    missed = await send_message(alice, conversation_id, "add task: second")
    cursor = await cursor_after(alice, conversation_id, 2)
    async with connect(server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe(
            "1", MESSAGE_ADDED_AFTER, {"conversationId": conversation_id, "after": cursor}
        )
        caught_up = [
            next_data(await ws.next_message(), "1")["messageAdded"]["id"] for _ in range(2)
        ]
        live = await send_message(alice, conversation_id, "add task: third")
        delivered = [
            next_data(await ws.next_message(), "1")["messageAdded"]["id"] for _ in range(2)
        ]
    assert seen["message"]["id"] not in caught_up
    assert caught_up == [missed["userMessage"]["id"], missed["message"]["id"]]
    assert delivered == [live["userMessage"]["id"], live["message"]["id"]]


async def test_message_added_with_a_foreign_cursor_is_bad_user_input(
    server: LiveServer, alice: GraphQLClient
) -> None:
    first = await create_conversation(alice)
    second = await create_conversation(alice)
    await send_message(alice, first, "add task: one")
    cursor = await cursor_after(alice, first, 1)
    async with connect(server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe("1", MESSAGE_ADDED_AFTER, {"conversationId": second, "after": cursor})
        assert await operation_error_codes(ws, "1") == ["BAD_USER_INPUT"]


# --- origins ---------------------------------------------------------------------------


async def test_websocket_from_a_configured_origin_is_accepted_and_others_refused(
    server_factory: ServerFactory,
) -> None:
    live = await server_factory(cors_origins="https://app.example")
    async with connect(live.ws_url, bearer(new_token()), {"Origin": "https://app.example"}) as ws:
        assert ws.acknowledged
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with connect(live.ws_url, bearer(new_token()), {"Origin": "https://evil.example"}):
            pass
    assert refused.value.response.status_code == 403


async def test_message_added_completes_when_the_conversation_is_deleted(
    server: LiveServer, alice: GraphQLClient
) -> None:
    conversation_id = await create_conversation(alice)
    async with connect(server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe("1", MESSAGE_ADDED, {"conversationId": conversation_id})
        await wait_until_live(ws, "1", alice, conversation_id)
        await alice.data(
            "mutation($id: ID!) { deleteConversation(input: {id: $id}) { deletedId } }",
            {"id": conversation_id},
        )
        assert await ws.next_message() == {"id": "1", "type": "complete"}
