"""What a turn leaves on the record, through the API: usage (the offline agent's are
estimated), the viewer's totals, feedback, provenance both ways, replyTo, and tool
effects a regenerated reply replays instead of applying twice."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import GraphQLClient, LiveServer

SEND = """
mutation($input: SendMessageInput!) {
  sendMessage(input: $input) {
    conversation { id }
    userMessage { id usage { totalTokens } replyTo { id } feedback { rating } affectedTasks { id } }
    message {
      id
      replyTo { id role }
      usage { promptTokens completionTokens totalTokens model latencyMs estimated }
      toolCalls { id name arguments result ok }
      affectedTasks { id title status }
    }
  }
}"""
REGENERATE = """
mutation($id: ID!) {
  regenerateReply(input: {conversationId: $id}) {
    message { id toolCalls { id name result ok } affectedTasks { id status } }
  }
}"""
USAGE = """
query($since: DateTime) {
  me { usage(since: $since) { turns promptTokens completionTokens totalTokens } }
}"""
RATE = """
mutation($input: RateReplyInput!) {
  rateReply(input: $input) { message { id feedback { rating comment updatedAt } } }
}"""
FEEDBACK = "query($id: ID!) { node(id: $id) { ... on Message { feedback { rating comment } } } }"
TASKS = """
{ tasks(first: 20) { edges { node { id title status
    origin { message { id role content } toolCall { id name ok } } } } } }"""
MESSAGE_TASKS = "query($id: ID!) { node(id: $id) { ... on Message { affectedTasks { id } } } }"
CREATE_TASK = "mutation($title: String!) { createTask(input: {title: $title}) { task { id } } }"
DELETE_TASK = "mutation($id: ID!) { deleteTask(input: {id: $id}) { deletedId } }"
REOPEN_TASK = "mutation($id: ID!) { reopenTask(input: {id: $id}) { task { status } } }"
DELETE_CONVERSATION = "mutation($id: ID!) { deleteConversation(input: {id: $id}) { deletedId } }"


async def send(
    client: GraphQLClient, content: str, conversation_id: str | None = None
) -> dict[str, Any]:
    values: dict[str, Any] = {"content": content}
    if conversation_id is not None:
        values["conversationId"] = conversation_id
    result: dict[str, Any] = (await client.data(SEND, {"input": values}))["sendMessage"]
    return result


async def usage_totals(client: GraphQLClient, since: str | None = None) -> dict[str, int]:
    totals: dict[str, int] = (await client.data(USAGE, {"since": since}))["me"]["usage"]
    return totals


async def tasks(client: GraphQLClient) -> list[dict[str, Any]]:
    return [edge["node"] for edge in (await client.data(TASKS))["tasks"]["edges"]]


# --- usage -----------------------------------------------------------------------------------


async def test_the_offline_agent_reports_estimated_usage_and_totals_add_up(
    alice: GraphQLClient, bob: GraphQLClient
) -> None:
    before = datetime.now(UTC).isoformat()
    first = await send(alice, "add a task to buy milk")
    second = await send(alice, "list my tasks", first["conversation"]["id"])
    await send(bob, "list my tasks")

    usages = [first["message"]["usage"], second["message"]["usage"]]
    for usage in usages:
        assert usage["estimated"] is True
        assert usage["model"] == "offline"
        assert usage["promptTokens"] > 0
        assert usage["completionTokens"] > 0
        assert usage["totalTokens"] == usage["promptTokens"] + usage["completionTokens"]
        assert usage["latencyMs"] >= 0
    assert first["userMessage"]["usage"] is None
    # a later turn sends more history: it costs more prompt tokens
    assert usages[1]["promptTokens"] > usages[0]["promptTokens"]

    expected = {
        "turns": 2,
        "promptTokens": sum(u["promptTokens"] for u in usages),
        "completionTokens": sum(u["completionTokens"] for u in usages),
        "totalTokens": sum(u["totalTokens"] for u in usages),
    }
    assert await usage_totals(alice) == expected
    assert await usage_totals(alice, before) == expected
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert await usage_totals(alice, later) == {
        "turns": 0,
        "promptTokens": 0,
        "completionTokens": 0,
        "totalTokens": 0,
    }


# --- replyTo ---------------------------------------------------------------------------------


async def test_a_reply_points_at_its_question(alice: GraphQLClient) -> None:
    sent = await send(alice, "list my tasks")

    assert sent["message"]["replyTo"] == {"id": sent["userMessage"]["id"], "role": "USER"}
    assert sent["userMessage"]["replyTo"] is None


# --- feedback --------------------------------------------------------------------------------


def feedback_count(metrics: str, rating: str) -> float:
    match = re.search(rf'^taskchat_reply_feedback_total{{rating="{rating}"}} (\S+)$', metrics, re.M)
    return float(match.group(1)) if match else 0.0


async def test_feedback_is_one_changeable_rating_per_user_and_reply(
    alice: GraphQLClient, bob: GraphQLClient, server: LiveServer
) -> None:
    metrics_before = (await alice.http.get("/metrics")).text
    sent = await send(alice, "list my tasks")
    reply_id = sent["message"]["id"]

    rated = await alice.data(RATE, {"input": {"messageId": reply_id, "rating": "UP"}})
    assert rated["rateReply"]["message"]["id"] == reply_id
    assert rated["rateReply"]["message"]["feedback"]["rating"] == "UP"
    assert rated["rateReply"]["message"]["feedback"]["comment"] is None

    changed = await alice.data(
        RATE, {"input": {"messageId": reply_id, "rating": "DOWN", "comment": "  too terse "}}
    )
    feedback = changed["rateReply"]["message"]["feedback"]
    assert (feedback["rating"], feedback["comment"]) == ("DOWN", "too terse")
    assert (await alice.data(FEEDBACK, {"id": reply_id}))["node"]["feedback"] == {
        "rating": "DOWN",
        "comment": "too terse",
    }

    metrics_after = (await alice.http.get("/metrics")).text
    for rating in ("UP", "DOWN"):
        assert feedback_count(metrics_after, rating) == feedback_count(metrics_before, rating) + 1


async def test_feedback_is_for_your_own_assistant_replies_only(
    alice: GraphQLClient, bob: GraphQLClient
) -> None:
    sent = await send(alice, "list my tasks")
    reply_id, question_id = sent["message"]["id"], sent["userMessage"]["id"]

    def rate(message_id: str, comment: str | None = None) -> dict[str, Any]:
        return {"input": {"messageId": message_id, "rating": "UP", "comment": comment}}

    assert await bob.error_code(RATE, rate(reply_id)) == "NOT_FOUND"
    assert await alice.error_code(RATE, rate(question_id)) == "BAD_USER_INPUT"
    assert await alice.error_code(RATE, rate(reply_id, "x" * 2001)) == "BAD_USER_INPUT"
    assert await alice.error_code(RATE, rate(sent["conversation"]["id"])) == "BAD_USER_INPUT"
    assert (await alice.data(FEEDBACK, {"id": reply_id}))["node"]["feedback"] is None

    await alice.data(RATE, rate(reply_id, "x" * 2000))
    await alice.data(DELETE_CONVERSATION, {"id": sent["conversation"]["id"]})
    assert await alice.error_code(RATE, rate(reply_id)) == "NOT_FOUND"


# --- provenance ------------------------------------------------------------------------------


async def test_provenance_both_ways(alice: GraphQLClient, bob: GraphQLClient) -> None:
    added = await send(alice, "add a task to buy milk")
    conversation_id = added["conversation"]["id"]
    [call] = added["message"]["toolCalls"]
    task_id = call["result"]["task"]["id"]
    await alice.data(CREATE_TASK, {"title": "call mom"})
    completed = await send(alice, "complete buy milk", conversation_id)

    by_title = {task["title"]: task for task in await tasks(alice)}
    origin = by_title["buy milk"]["origin"]
    assert origin["message"]["id"] == added["message"]["id"]
    assert origin["message"]["role"] == "ASSISTANT"
    assert origin["toolCall"] == {"id": call["id"], "name": "add_task", "ok": True}
    assert by_title["call mom"]["origin"] is None  # made by a mutation

    assert added["message"]["affectedTasks"] == [
        {"id": task_id, "title": "buy milk", "status": "PENDING"}
    ]
    assert completed["message"]["affectedTasks"] == [
        {"id": task_id, "title": "buy milk", "status": "COMPLETED"}
    ]
    listed = await send(alice, "list my tasks", conversation_id)
    assert listed["message"]["affectedTasks"] == []  # reading changes nothing
    assert added["userMessage"]["affectedTasks"] == []

    # another user sees neither the reply nor its tasks
    assert (await bob.data(MESSAGE_TASKS, {"id": added["message"]["id"]}))["node"] is None

    await alice.data(DELETE_TASK, {"id": task_id})
    node = (await alice.data(MESSAGE_TASKS, {"id": added["message"]["id"]}))["node"]
    assert node == {"affectedTasks": []}


async def test_a_task_whose_reply_is_deleted_has_no_origin(alice: GraphQLClient) -> None:
    added = await send(alice, "add task: water the plants")
    await alice.data(DELETE_CONVERSATION, {"id": added["conversation"]["id"]})

    [task] = await tasks(alice)
    assert task["title"] == "water the plants"
    assert task["origin"] is None


# --- tool effects, exactly once ------------------------------------------------------------


async def test_regenerating_after_a_tool_change_replays_it(alice: GraphQLClient) -> None:
    added = await send(alice, "add task: buy milk")
    conversation_id = added["conversation"]["id"]
    completed = await send(alice, "complete buy milk", conversation_id)
    [first_call] = completed["message"]["toolCalls"]
    task_id = first_call["result"]["task"]["id"]
    # the user changes their mind by hand; regenerating the reply must not undo that
    await alice.data(REOPEN_TASK, {"id": task_id})

    new_reply = (await alice.data(REGENERATE, {"id": conversation_id}))["regenerateReply"][
        "message"
    ]

    [call] = new_reply["toolCalls"]
    assert (call["name"], call["ok"]) == ("complete_task", True)
    assert call["result"]["replayed"] is True
    assert call["result"]["task"] == first_call["result"]["task"]  # what had happened
    assert [(t["id"], t["status"]) for t in await tasks(alice)] == [(task_id, "PENDING")]
    assert new_reply["affectedTasks"] == [{"id": task_id, "status": "PENDING"}]
    # the task still comes from the reply that added it
    [task] = await tasks(alice)
    assert task["origin"]["message"]["id"] == added["message"]["id"]


async def test_a_regenerated_reply_becomes_the_origin_of_what_it_replays(
    alice: GraphQLClient,
) -> None:
    added = await send(alice, "add task: buy milk")
    regenerated = (await alice.data(REGENERATE, {"id": added["conversation"]["id"]}))[
        "regenerateReply"
    ]["message"]
    again = (await alice.data(REGENERATE, {"id": added["conversation"]["id"]}))["regenerateReply"][
        "message"
    ]

    for reply in (regenerated, again):
        [call] = reply["toolCalls"]
        assert call["result"]["replayed"] is True
    [task] = await tasks(alice)
    assert task["origin"]["message"]["id"] == again["id"]  # the live reply
    assert again["affectedTasks"] == [{"id": task["id"], "status": "PENDING"}]
