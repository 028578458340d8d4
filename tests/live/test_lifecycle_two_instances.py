"""The reply lifecycle across two real server processes on one PostgreSQL: a stop from
the other instance, rejoining a reply on the other instance after a dropped socket (over
many runs: no gap, no repeat), each `onBusy` policy with senders on both, and
`conversationEvents` fed by the other instance."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import GraphQLClient, token_for
from tests.live.test_reply_lifecycle import (
    CONVERSATION_EVENTS,
    SEND,
    STOP_REPLY,
    next_event,
    rest_of_stream,
    start_stream,
    text_by_offset,
    wait_events_live,
)
from tests.live.test_two_instances import serve_process
from tests.live.test_websocket import REPLY_STREAM, conversation_messages, create_conversation
from tests.live.ws_client import bearer, connect
from tests.standin.groq_standin import GroqStandIn, text

LONG_REPLY = " ".join(f"word{n}" for n in range(40))
RUNS = 20


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/graphql"


async def test_stop_and_every_busy_policy_across_instances(
    database_urls: dict[str, str], tmp_path: Path
) -> None:
    token = token_for(f"two-life-{uuid.uuid4()}")
    with GroqStandIn() as standin:
        standin.script(
            text(LONG_REPLY, stream_delay=0.2),  # stopped from B
            text(LONG_REPLY, stream_delay=0.05),  # REJECT: runs to its end
            text(LONG_REPLY, stream_delay=0.2),  # INTERRUPT: stopped ...
            text("Second answer."),  # ... and B's message answered
            text(LONG_REPLY, stream_delay=0.02),  # QUEUE: runs to its end ...
            text("Queued answer."),  # ... then B's message
        )
        model = {"agent_provider": "groq", "groq_api_key": "k", "groq_base_url": standin.base_url}
        async with (
            serve_process(database_urls["postgres"], tmp_path / "a.log", **model) as url_a,
            serve_process(database_urls["postgres"], tmp_path / "b.log", **model) as url_b,
            httpx.AsyncClient(base_url=url_b, timeout=30) as http_b,
        ):
            client_b = GraphQLClient(http_b, token)

            # stop from B while A streams
            conversation_id = await create_conversation(client_b)
            async with connect(ws_url(url_a), bearer(token)) as ws:
                reply_id, events = await start_stream(ws, conversation_id)
                asked = time.perf_counter()
                stopped = (await client_b.data(STOP_REPLY, {"id": conversation_id}))["stopReply"]
                answered = time.perf_counter()
                rest = await rest_of_stream(ws, "s", "sendMessageStream")
                ended_on_a = time.perf_counter()
            message = stopped["message"]
            assert message["id"] == reply_id
            assert message["status"] == "STOPPED"
            assert message["content"]
            assert LONG_REPLY.startswith(message["content"])
            assert message["content"] != LONG_REPLY
            assert rest[-1]["message"]["status"] == "STOPPED"
            deltas = [e for e in events + rest if e["__typename"] == "ReplyDelta"]
            assert text_by_offset(deltas) == message["content"]
            print(
                f"\nstop across instances: stopReply on B answered (STOPPED stored by A) in"
                f" {(answered - asked) * 1000:.0f} ms; A's stream ended"
                f" {(ended_on_a - asked) * 1000:.0f} ms after the stop was asked"
            )

            for policy in ("REJECT", "INTERRUPT", "QUEUE"):
                conversation_id = await create_conversation(client_b)
                async with connect(ws_url(url_a), bearer(token)) as ws:
                    _, events = await start_stream(ws, conversation_id)
                    second = await client_b.execute(
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
                first = events[-1]["message"]
                stored = await conversation_messages(client_b, conversation_id)
                contents = [edge["node"]["content"] for edge in stored["messages"]["edges"]]
                if policy == "REJECT":
                    assert second["errors"][0]["extensions"]["code"] == "CONVERSATION_BUSY"
                    assert first["status"] == "COMPLETED"
                    assert contents == ["tell me a long story", LONG_REPLY]
                elif policy == "INTERRUPT":
                    assert first["status"] == "STOPPED"
                    reply = second["data"]["sendMessage"]["message"]
                    assert reply["content"] == "Second answer."
                    assert contents == [
                        "tell me a long story",
                        first["content"],
                        "second question",
                        "Second answer.",
                    ]
                else:
                    assert first["status"] == "COMPLETED"
                    assert contents == [
                        "tell me a long story",
                        LONG_REPLY,
                        "second question",
                        "Queued answer.",
                    ]


async def test_a_reply_rejoined_on_the_other_instance_has_no_gap_and_no_repeat(
    database_urls: dict[str, str], tmp_path: Path
) -> None:
    """Each run: a streamed turn on A, its socket dropped after k deltas (a reload), and
    `replyStream(afterSequence: k)` on B; the text applied by offset is the final content."""
    token = token_for(f"two-resume-{uuid.uuid4()}")
    gaps = repeats = 0
    with GroqStandIn() as standin:
        standin.script_forever(text(LONG_REPLY, stream_delay=0.01))
        model = {"agent_provider": "groq", "groq_api_key": "k", "groq_base_url": standin.base_url}
        async with (
            serve_process(database_urls["postgres"], tmp_path / "a.log", **model) as url_a,
            serve_process(database_urls["postgres"], tmp_path / "b.log", **model) as url_b,
        ):
            for run in range(RUNS):
                client_a = GraphQLClient(httpx.AsyncClient(base_url=url_a), token)
                conversation_id = await create_conversation(client_a)
                await client_a.http.aclose()
                async with connect(ws_url(url_a), bearer(token)) as ws:
                    reply_id, events = await start_stream(ws, conversation_id)
                    while len(seen := [e for e in events if e["__typename"] == "ReplyDelta"]) < (
                        run % 5 + 1
                    ):
                        events.append(next_data_of(await ws.next_message(), "s"))
                # the socket is gone; B joins after the last delta the client had
                after = seen[-1]["sequence"]
                async with connect(ws_url(url_b), bearer(token)) as ws:
                    await ws.subscribe("r", REPLY_STREAM, {"messageId": reply_id, "after": after})
                    joined = await rest_of_stream(ws, "r", "replyStream")
                completed = joined[-1]
                assert completed["__typename"] == "ReplyCompleted"
                assert completed["message"]["status"] == "COMPLETED"
                sequences = [e["sequence"] for e in seen + joined[:-1]]
                expected = list(range(1, len(sequences) + 1))
                gaps += len(set(expected) - set(sequences))
                repeats += len(sequences) - len(set(sequences))
                assert text_by_offset(seen + joined[:-1]) == completed["message"]["content"]
                assert "".join(e["text"] for e in seen + joined[:-1]) == LONG_REPLY
    print(f"\nresume across instances over {RUNS} runs: {gaps} gaps, {repeats} repeats")
    assert (gaps, repeats) == (0, 0)


def next_data_of(message: dict[str, Any], operation_id: str) -> dict[str, Any]:
    assert message.get("id") == operation_id, message
    event: dict[str, Any] = message["payload"]["data"]["sendMessageStream"]
    return event


async def test_conversation_events_reach_the_other_instance(
    database_urls: dict[str, str], tmp_path: Path
) -> None:
    token = token_for(f"two-events-{uuid.uuid4()}")
    async with (
        serve_process(database_urls["postgres"], tmp_path / "a.log") as url_a,
        serve_process(database_urls["postgres"], tmp_path / "b.log") as url_b,
        httpx.AsyncClient(base_url=url_b, timeout=30) as http_b,
    ):
        client_b = GraphQLClient(http_b, token)
        async with connect(ws_url(url_a), bearer(token)) as ws:
            await ws.subscribe("e", CONVERSATION_EVENTS)
            await wait_events_live(ws, client_b)
            conversation_id = await create_conversation(client_b)
            created = await next_event(ws)
            await client_b.data(
                'mutation($id: ID!) { renameConversation(input: {id: $id, title: "moved"})'
                " { conversation { id } } }",
                {"id": conversation_id},
            )
            renamed = await next_event(ws)
            await client_b.data(
                "mutation($id: ID!) { deleteConversation(input: {id: $id}) { deletedId } }",
                {"id": conversation_id},
            )
            deleted = await next_event(ws)
    assert created["conversation"]["id"] == conversation_id
    assert renamed["conversation"]["title"] == "moved"
    assert deleted["__typename"] == "ConversationDeleted"
    assert deleted["id"] == conversation_id
    await asyncio.sleep(0)
