"""The reply lifecycle on one instance, on both databases: a reply that exists while it
is written (STREAMING, `activeReply`), stop, `replyStream`, `onBusy`, the error
extensions of a failed send and `conversationEvents`."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from tests.conftest import GraphQLClient, LiveServer, ServerFactory, token_for
from tests.live.test_websocket import (
    MESSAGE_ADDED,
    REPLY_STREAM,
    SEND_MESSAGE_STREAM,
    conversation_messages,
    create_conversation,
    eventually,
    next_data,
)
from tests.live.ws_client import GraphQLWebSocket, bearer, connect
from tests.pgtools import asyncpg_dsn
from tests.standin.groq_standin import GroqStandIn, call, error, text, tool_calls

LONG_REPLY = " ".join(f"word{n}" for n in range(40))

STOP_REPLY = """
mutation Stop($id: ID!) {
  stopReply(input: {conversationId: $id}) {
    conversation { id messageCount activeReply { id } }
    message { id status content toolCalls { name ok } }
  }
}
"""

CONVERSATION_STATE = """
query State($id: ID!) {
  conversation(id: $id) {
    messageCount
    lastMessage { id role status }
    activeReply { id role status content }
    messages { totalCount edges { node { id role status content } } }
  }
}
"""

SEND = """
mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) {
    conversation { id messageCount }
    userMessage { id content }
    message { id status content }
  }
}
"""

CONVERSATION_EVENTS = """
subscription Events($after: String) {
  conversationEvents(after: $after) {
    __typename
    ... on ConversationUpserted {
      cursor conversation { id title status lastMessage { role content } }
    }
    ... on ConversationDeleted { id cursor }
  }
}
"""


@pytest.fixture
def standin() -> Iterator[GroqStandIn]:
    with GroqStandIn() as running:
        yield running


async def groq_server(server_factory: ServerFactory, standin: GroqStandIn) -> LiveServer:
    return await server_factory(
        agent_provider="groq", groq_api_key="k", groq_base_url=standin.base_url
    )


def new_client(live: LiveServer) -> GraphQLClient:
    return live.client(token_for(f"life-{uuid.uuid4()}"))


async def start_stream(
    ws: GraphQLWebSocket, conversation_id: str, content: str = "tell me a long story"
) -> tuple[str, list[dict[str, Any]]]:
    """Subscribes a streamed turn and reads it up to its first delta: the reply's id and
    the events so far."""
    stream_input = {"conversationId": conversation_id, "content": content}
    await ws.subscribe("s", SEND_MESSAGE_STREAM, {"input": stream_input})
    events: list[dict[str, Any]] = []
    while not events or events[-1]["__typename"] != "ReplyDelta":
        events.append(next_data(await ws.next_message(timeout=10), "s")["sendMessageStream"])
    started = next(e for e in events if e["__typename"] == "ReplyStarted")
    reply_id: str = started["message"]["id"]
    return reply_id, events


async def rest_of_stream(ws: GraphQLWebSocket, operation_id: str, field: str) -> list[Any]:
    events: list[dict[str, Any]] = []
    while True:
        message = await ws.next_message(timeout=10)
        if message == {"id": operation_id, "type": "complete"}:
            return events
        events.append(next_data(message, operation_id)[field])


def text_by_offset(deltas: list[dict[str, Any]], seen: str = "") -> str:
    """Applies deltas the way a client does: at their offset (a repeat would overwrite,
    not duplicate; a gap fails)."""
    for delta in deltas:
        assert delta["offset"] <= len(seen), ("gap", delta, seen)
        seen = seen[: delta["offset"]] + delta["text"]
    return seen


# --- a reply exists while it is written ------------------------------------------------


async def test_a_streaming_reply_is_the_active_reply_and_not_yet_listed(
    server_factory: ServerFactory, standin: GroqStandIn
) -> None:
    standin.script(text(LONG_REPLY, stream_delay=0.05))
    live = await groq_server(server_factory, standin)
    client = new_client(live)
    conversation_id = await create_conversation(client)
    async with connect(live.ws_url, bearer(client.token or "")) as ws:
        reply_id, _ = await start_stream(ws, conversation_id)
        during = (await client.data(CONVERSATION_STATE, {"id": conversation_id}))["conversation"]
        node = await client.data(
            "query($id: ID!) { node(id: $id) { ... on Message { status role } } }",
            {"id": reply_id},
        )
        await rest_of_stream(ws, "s", "sendMessageStream")
    after = (await client.data(CONVERSATION_STATE, {"id": conversation_id}))["conversation"]

    assert during["activeReply"]["id"] == reply_id
    assert during["activeReply"]["status"] == "STREAMING"
    assert node["node"] == {"status": "STREAMING", "role": "ASSISTANT"}
    # listed: only finished messages, and the three readers agree
    assert during["messageCount"] == during["messages"]["totalCount"] == 1
    assert [edge["node"]["role"] for edge in during["messages"]["edges"]] == ["USER"]
    assert during["lastMessage"]["role"] == "USER"
    assert after["activeReply"] is None
    assert after["messageCount"] == after["messages"]["totalCount"] == 2
    assert after["lastMessage"] == {"id": reply_id, "role": "ASSISTANT", "status": "COMPLETED"}
    assert after["messages"]["edges"][1]["node"]["content"] == LONG_REPLY


async def test_message_added_subscribed_mid_reply_delivers_the_reply_when_it_ends(
    server_factory: ServerFactory, standin: GroqStandIn
) -> None:
    """The streaming reply already has its position: a feed that starts meanwhile still
    delivers it once it is listed."""
    standin.script(text(LONG_REPLY, stream_delay=0.05))
    live = await groq_server(server_factory, standin)
    client = new_client(live)
    conversation_id = await create_conversation(client)
    async with (
        connect(live.ws_url, bearer(client.token or "")) as ws,
        connect(live.ws_url, bearer(client.token or "")) as feed,
    ):
        reply_id, _ = await start_stream(ws, conversation_id)
        await feed.subscribe("m", MESSAGE_ADDED, {"conversationId": conversation_id})
        await rest_of_stream(ws, "s", "sendMessageStream")
        delivered = next_data(await feed.next_message(timeout=5), "m")["messageAdded"]
    assert delivered == {"id": reply_id, "role": "ASSISTANT", "content": LONG_REPLY}


# --- stop ------------------------------------------------------------------------------


async def test_stop_reply_keeps_the_text_so_far_as_a_stopped_reply(
    server_factory: ServerFactory, standin: GroqStandIn
) -> None:
    standin.script(text(LONG_REPLY, stream_delay=0.1))
    live = await groq_server(server_factory, standin)
    client = new_client(live)
    conversation_id = await create_conversation(client)
    async with connect(live.ws_url, bearer(client.token or "")) as ws:
        reply_id, events = await start_stream(ws, conversation_id)
        asked = time.perf_counter()
        stopped = (await client.data(STOP_REPLY, {"id": conversation_id}))["stopReply"]
        took = time.perf_counter() - asked
        rest = await rest_of_stream(ws, "s", "sendMessageStream")

    message = stopped["message"]
    assert message["id"] == reply_id
    assert message["status"] == "STOPPED"
    assert message["content"]
    assert LONG_REPLY.startswith(message["content"])
    assert message["content"] != LONG_REPLY
    assert stopped["conversation"]["activeReply"] is None
    assert stopped["conversation"]["messageCount"] == 2
    # the stream ends with the STOPPED reply, its deltas adding up to its content
    assert rest[-1]["__typename"] == "ReplyCompleted"
    assert rest[-1]["message"]["status"] == "STOPPED"
    deltas = [e for e in events + rest if e["__typename"] == "ReplyDelta"]
    assert text_by_offset(deltas) == message["content"]

    async def model_request_aborted() -> bool:
        return standin.chat_requests[0].aborted

    await eventually(model_request_aborted, timeout=3)
    print(f"\nstopReply on the streaming instance answered in {took * 1000:.0f} ms")

    # nothing runs now: not an error, no message
    again = (await client.data(STOP_REPLY, {"id": conversation_id}))["stopReply"]
    assert again["message"] is None
    assert again["conversation"]["messageCount"] == 2


async def test_a_stop_keeps_the_effects_of_the_tool_calls_made_and_lists_them(
    server_factory: ServerFactory, standin: GroqStandIn
) -> None:
    standin.script(
        tool_calls(call("add_task", {"title": "buy milk"})), text(LONG_REPLY, stream_delay=0.1)
    )
    live = await groq_server(server_factory, standin)
    client = new_client(live)
    conversation_id = await create_conversation(client)
    async with connect(live.ws_url, bearer(client.token or "")) as ws:
        _, events = await start_stream(ws, conversation_id, "add a task to buy milk")
        stopped = (await client.data(STOP_REPLY, {"id": conversation_id}))["stopReply"]
        await rest_of_stream(ws, "s", "sendMessageStream")

    assert [e["__typename"] for e in events[:3]] == [
        "UserMessageSaved",
        "ReplyStarted",
        "ToolCallCompleted",
    ]
    assert events[2]["sequence"] == 1
    assert stopped["message"]["status"] == "STOPPED"
    assert stopped["message"]["toolCalls"] == [{"name": "add_task", "ok": True}]
    tasks = await client.data("{ tasks { edges { node { title } } } }")
    assert tasks["tasks"]["edges"] == [{"node": {"title": "buy milk"}}]


async def test_a_failed_turn_keeps_no_task_change_and_lists_no_reply(
    server_factory: ServerFactory, standin: GroqStandIn
) -> None:
    standin.script(tool_calls(call("add_task", {"title": "buy milk"})), error(401))
    live = await groq_server(server_factory, standin)
    client = new_client(live)
    conversation_id = await create_conversation(client)
    payload = await client.execute(
        SEND, {"input": {"conversationId": conversation_id, "content": "add buy milk"}}
    )
    assert payload["errors"][0]["extensions"]["code"] == "AGENT_UNAVAILABLE"
    state = (await client.data(CONVERSATION_STATE, {"id": conversation_id}))["conversation"]
    assert state["messageCount"] == 1
    assert state["activeReply"] is None
    assert (await client.data("{ tasks { totalCount } }"))["tasks"]["totalCount"] == 0


# --- replyStream -----------------------------------------------------------------------


async def test_reply_stream_from_the_start_then_live_then_completed(
    server_factory: ServerFactory, standin: GroqStandIn
) -> None:
    standin.script(text(LONG_REPLY, stream_delay=0.03))
    live = await groq_server(server_factory, standin)
    client = new_client(live)
    conversation_id = await create_conversation(client)
    async with (
        connect(live.ws_url, bearer(client.token or "")) as ws,
        connect(live.ws_url, bearer(client.token or "")) as joiner,
    ):
        reply_id, _ = await start_stream(ws, conversation_id)
        await joiner.subscribe("r", REPLY_STREAM, {"messageId": reply_id})
        joined = await rest_of_stream(joiner, "r", "replyStream")
        await rest_of_stream(ws, "s", "sendMessageStream")

    assert joined[0]["__typename"] == "ReplyStarted"
    assert joined[-1]["__typename"] == "ReplyCompleted"
    deltas = joined[1:-1]
    assert [delta["sequence"] for delta in deltas] == list(range(1, len(deltas) + 1))
    assert "".join(delta["text"] for delta in deltas) == LONG_REPLY
    assert text_by_offset(deltas) == joined[-1]["message"]["content"] == LONG_REPLY


async def test_reply_stream_of_a_finished_reply_completes_at_once(
    server: LiveServer, alice: GraphQLClient, bob: GraphQLClient
) -> None:
    sent = (await alice.data(SEND, {"input": {"content": "list my tasks"}}))["sendMessage"]
    reply_id = sent["message"]["id"]
    async with connect(server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe("r", REPLY_STREAM, {"messageId": reply_id, "after": 3})
        events = await rest_of_stream(ws, "r", "replyStream")
    assert events == [
        {
            "__typename": "ReplyCompleted",
            "message": {
                "id": reply_id,
                "role": "ASSISTANT",
                "content": sent["message"]["content"],
                "status": "COMPLETED",
            },
        }
    ]
    async with connect(server.ws_url, bearer(bob.token or "")) as ws:
        await ws.subscribe("r", REPLY_STREAM, {"messageId": reply_id})
        message = await ws.next_message()
    assert message["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"


# --- a second message mid-reply --------------------------------------------------------


async def busy_conversation(
    server_factory: ServerFactory, standin: GroqStandIn
) -> tuple[LiveServer, GraphQLClient, str]:
    standin.script(text(LONG_REPLY, stream_delay=0.05), text("Second answer."))
    live = await groq_server(server_factory, standin)
    client = new_client(live)
    return live, client, await create_conversation(client)


async def send_while_busy(
    live: LiveServer, client: GraphQLClient, conversation_id: str, policy: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A streamed first turn, and a second sendMessage with `policy` once it answers."""
    async with connect(live.ws_url, bearer(client.token or "")) as ws:
        _, events = await start_stream(ws, conversation_id)
        second = await client.execute(
            SEND,
            {
                "input": {
                    "conversationId": conversation_id,
                    "content": "second question",
                    "onBusy": policy,
                }
            },
        )
        events += await rest_of_stream(ws, "s", "sendMessageStream")
    return events, second


async def test_on_busy_reject_refuses_at_once_and_stores_nothing(
    server_factory: ServerFactory, standin: GroqStandIn
) -> None:
    live, client, conversation_id = await busy_conversation(server_factory, standin)
    events, second = await send_while_busy(live, client, conversation_id, "REJECT")
    assert second["errors"][0]["extensions"]["code"] == "CONVERSATION_BUSY"
    assert events[-1]["message"]["status"] == "COMPLETED"
    stored = await conversation_messages(client, conversation_id)
    assert [edge["node"]["content"] for edge in stored["messages"]["edges"]] == [
        "tell me a long story",
        LONG_REPLY,
    ]


async def test_on_busy_interrupt_stops_the_running_reply_then_answers(
    server_factory: ServerFactory, standin: GroqStandIn
) -> None:
    live, client, conversation_id = await busy_conversation(server_factory, standin)
    events, second = await send_while_busy(live, client, conversation_id, "INTERRUPT")
    assert "errors" not in second, second
    assert second["data"]["sendMessage"]["message"]["content"] == "Second answer."
    first_reply = events[-1]["message"]
    assert first_reply["status"] == "STOPPED"
    stored = await conversation_messages(client, conversation_id)
    assert [edge["node"]["content"] for edge in stored["messages"]["edges"]] == [
        "tell me a long story",
        first_reply["content"],
        "second question",
        "Second answer.",
    ]


async def test_on_busy_queue_waits_for_the_running_reply(
    server_factory: ServerFactory, standin: GroqStandIn
) -> None:
    live, client, conversation_id = await busy_conversation(server_factory, standin)
    events, second = await send_while_busy(live, client, conversation_id, "QUEUE")
    assert events[-1]["message"]["status"] == "COMPLETED"
    assert second["data"]["sendMessage"]["message"]["content"] == "Second answer."
    stored = await conversation_messages(client, conversation_id)
    assert [edge["node"]["content"] for edge in stored["messages"]["edges"]] == [
        "tell me a long story",
        LONG_REPLY,
        "second question",
        "Second answer.",
    ]


async def test_a_stop_sent_while_a_queued_message_waits_stops_the_running_reply_alone(
    server_factory: ServerFactory,
    standin: GroqStandIn,
    database_urls: dict[str, str],
    backend: str,
) -> None:
    """The queued turn listens for stops once it holds the lock (on PostgreSQL taken with
    its first statement), not while it waits: the stop was for the reply running then."""
    live, client, conversation_id = await busy_conversation(server_factory, standin)
    async with connect(live.ws_url, bearer(client.token or "")) as ws:
        await start_stream(ws, conversation_id)
        second = asyncio.create_task(
            client.execute(
                SEND, {"input": {"conversationId": conversation_id, "content": "second question"}}
            )
        )
        await _until_a_turn_waits(database_urls[backend], backend)
        stopped = await client.data(STOP_REPLY, {"id": conversation_id})
        assert stopped["stopReply"]["message"]["status"] == "STOPPED"
        answered = await asyncio.wait_for(second, 20)
    assert "errors" not in answered, answered
    assert answered["data"]["sendMessage"]["message"]["status"] == "COMPLETED"
    assert answered["data"]["sendMessage"]["message"]["content"] == "Second answer."


async def _until_a_turn_waits(url: str, backend: str) -> None:
    """Until a turn waits for a conversation's lock (PostgreSQL: seen in `pg_locks`; the
    in-process lock of SQLite is not to be seen, so a moment's wait there)."""
    if backend != "postgres":
        await asyncio.sleep(0.3)
        return
    admin = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for _ in range(200):
            waiting = await admin.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            if waiting:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("no turn waited for the lock")
    finally:
        await admin.close()


# --- a failed first message can be found -----------------------------------------------


async def test_a_failed_first_send_says_where_its_message_is(
    server_factory: ServerFactory, standin: GroqStandIn
) -> None:
    standin.script(error(401), text("Here I am."))
    live = await groq_server(server_factory, standin)
    client = new_client(live)
    payload = await client.execute(SEND, {"input": {"content": "hello there"}})

    (failure,) = payload["errors"]
    extensions = failure["extensions"]
    assert extensions["code"] == "AGENT_UNAVAILABLE"
    found = await client.data(
        "query($c: ID!, $m: ID!) { conversation(id: $c) { messageCount }"
        " node(id: $m) { ... on Message { content role } } }",
        {"c": extensions["conversationId"], "m": extensions["userMessageId"]},
    )
    assert found == {
        "conversation": {"messageCount": 1},
        "node": {"content": "hello there", "role": "USER"},
    }
    regenerated = await client.data(
        "mutation($c: ID!) { regenerateReply(input: {conversationId: $c}) {"
        " userMessage { id } message { content } } }",
        {"c": extensions["conversationId"]},
    )
    assert regenerated["regenerateReply"] == {
        "userMessage": {"id": extensions["userMessageId"]},
        "message": {"content": "Here I am."},
    }


async def test_an_error_before_anything_is_stored_has_no_location(
    server: LiveServer, alice: GraphQLClient
) -> None:
    payload = await alice.execute(SEND, {"input": {"content": "   "}})
    extensions = payload["errors"][0]["extensions"]
    assert extensions["code"] == "BAD_USER_INPUT"
    assert "conversationId" not in extensions
    assert "userMessageId" not in extensions


# --- live conversation lists -----------------------------------------------------------


async def next_event(ws: GraphQLWebSocket, operation_id: str = "e") -> dict[str, Any]:
    event: dict[str, Any] = next_data(await ws.next_message(), operation_id)["conversationEvents"]
    return event


async def wait_events_live(ws: GraphQLWebSocket, client: GraphQLClient) -> None:
    """No "subscribed" acknowledgement: create conversations until one is announced."""
    for _ in range(5):
        await client.data(
            'mutation { createConversation(input: {title: "warm-up"}) { conversation { id } } }'
        )
        try:
            while (await next_event(ws))["conversation"]["title"] != "warm-up":
                pass
            return
        except TimeoutError:
            continue
    raise AssertionError("conversationEvents never announced anything")


async def test_conversation_events_follow_every_change_and_resume_after_a_cursor(
    server: LiveServer, alice: GraphQLClient, bob: GraphQLClient
) -> None:
    async with (
        connect(server.ws_url, bearer(alice.token or "")) as ws,
        connect(server.ws_url, bearer(bob.token or "")) as bobs,
    ):
        await ws.subscribe("e", CONVERSATION_EVENTS)
        await bobs.subscribe("e", CONVERSATION_EVENTS)
        await wait_events_live(ws, alice)
        conversation_id = await create_conversation(alice)
        created = await next_event(ws)
        await alice.data(
            'mutation($id: ID!) { renameConversation(input: {id: $id, title: "groceries"})'
            " { conversation { id } } }",
            {"id": conversation_id},
        )
        renamed = await next_event(ws)
        sent = (
            await alice.data(
                SEND, {"input": {"conversationId": conversation_id, "content": "list my tasks"}}
            )
        )["sendMessage"]
        messaged = [await next_event(ws)]
        while messaged[-1]["conversation"]["lastMessage"]["role"] != "ASSISTANT":
            messaged.append(await next_event(ws))
        await alice.data(
            "mutation($id: ID!) { archiveConversation(input: {id: $id}) { conversation { id } } }",
            {"id": conversation_id},
        )
        archived = await next_event(ws)
        # an event is the conversation as it is when it is read: the question's change,
        # read once the reply had ended, already showed the reply, and the reply's own
        # change (the same state) may come before the archive's
        while archived["conversation"]["status"] != "ARCHIVED":
            assert (
                archived["conversation"]["lastMessage"]
                == messaged[-1]["conversation"]["lastMessage"]
            )
            archived = await next_event(ws)
        await alice.data(
            "mutation($id: ID!) { deleteConversation(input: {id: $id}) { deletedId } }",
            {"id": conversation_id},
        )
        deleted = await next_event(ws)
        with pytest.raises(TimeoutError):
            await bobs.next_message(timeout=0.3)  # nothing of alice's reaches bob

    assert created["conversation"]["id"] == conversation_id
    assert renamed["conversation"]["title"] == "groceries"
    assert messaged[-1]["conversation"]["lastMessage"] == {
        "role": "ASSISTANT",
        "content": sent["message"]["content"],
    }
    assert archived["conversation"]["status"] == "ARCHIVED"
    assert deleted == {
        "__typename": "ConversationDeleted",
        "id": conversation_id,
        "cursor": deleted["cursor"],
    }

    # resume after the rename: the latest state of each conversation changed since
    async with connect(server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe("e", CONVERSATION_EVENTS, {"after": renamed["cursor"]})
        resumed = await next_event(ws)
    assert resumed == deleted


async def test_conversation_events_with_a_foreign_cursor_is_bad_user_input(
    server: LiveServer, alice: GraphQLClient, bob: GraphQLClient
) -> None:
    async with connect(server.ws_url, bearer(alice.token or "")) as ws:
        await ws.subscribe("e", CONVERSATION_EVENTS)
        await wait_events_live(ws, alice)
        await create_conversation(alice)
        cursor = (await next_event(ws))["cursor"]
    async with connect(server.ws_url, bearer(bob.token or "")) as ws:
        await ws.subscribe("e", CONVERSATION_EVENTS, {"after": cursor})
        message = await ws.next_message()
    assert message["payload"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_stopping_another_users_conversation_is_not_found(
    server: LiveServer, alice: GraphQLClient, bob: GraphQLClient
) -> None:
    conversation_id = await create_conversation(alice)
    assert await bob.error_code(STOP_REPLY, {"id": conversation_id}) == "NOT_FOUND"


async def test_a_reply_whose_turn_died_ends_failed_when_the_next_turn_begins(
    server: LiveServer, database_urls: dict[str, str], backend: str
) -> None:
    """A reply left STREAMING (its instance died mid-turn) lost its turn: the next turn
    in its conversation ends it FAILED, and the new reply is the active one."""
    from sqlalchemy import insert, select, update

    from core.ids import expect_global_id
    from db.engine import create_engine
    from db.models import Conversation, Message, MessageRole, MessageStatus
    from db.types import utcnow

    client = server.client(token_for(f"orphan-{uuid.uuid4()}"))
    sent = await client.data(
        'mutation { sendMessage(input: {content: "hello"}) { conversation { id } } }'
    )
    conversation = sent["sendMessage"]["conversation"]["id"]
    conversation_id = expect_global_id(conversation, "Conversation")
    orphan = uuid.uuid4()
    engine = create_engine(database_urls[backend], pool_size=1)
    try:
        async with engine.begin() as connection:
            # as an instance that died would leave it: the last message, STREAMING
            seq, user_id = (
                await connection.execute(
                    update(Conversation)
                    .where(Conversation.id == conversation_id)
                    .values(last_seq=Conversation.last_seq + 1)
                    .returning(Conversation.last_seq, Conversation.user_id)
                )
            ).one()
            await connection.execute(
                insert(Message).values(
                    id=orphan,
                    conversation_id=conversation_id,
                    user_id=user_id,
                    seq=seq,
                    role=MessageRole.ASSISTANT,
                    status=MessageStatus.STREAMING,
                    content="half",
                    tool_calls=[],
                    meta={},
                    created_at=utcnow(),
                )
            )
        await client.data(
            'mutation($c: ID!) { sendMessage(input: {conversationId: $c, content: "again"})'
            " { message { id } } }",
            {"c": conversation},
        )
        async with engine.connect() as connection:
            status = await connection.scalar(select(Message.status).where(Message.id == orphan))
        assert status == MessageStatus.FAILED
    finally:
        await engine.dispose()
