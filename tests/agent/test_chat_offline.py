"""sendMessage and regenerateReply end to end with the offline agent: phrasings become
tool calls that change the user's tasks; idempotency keys, turn locks and the rate limit
hold under concurrency and across server instances."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest

from tests.agent.turns import TASKS, send_input, tasks_of
from tests.conftest import GraphQLClient, ServerFactory, token_for

MESSAGE_FIELDS = "id role content clientMessageId toolCalls { id name arguments result ok }"
SEND = f"""
mutation Send($input: SendMessageInput!) {{
  sendMessage(input: $input) {{
    conversation {{ id title updatedAt messageCount }}
    userMessage {{ {MESSAGE_FIELDS} }}
    message {{ {MESSAGE_FIELDS} }}
  }}
}}
"""
REGENERATE = f"""
mutation Regenerate($input: RegenerateReplyInput!) {{
  regenerateReply(input: $input) {{
    conversation {{ id updatedAt messageCount }}
    userMessage {{ {MESSAGE_FIELDS} }}
    message {{ {MESSAGE_FIELDS} }}
  }}
}}
"""
MESSAGES = """
query Messages($id: ID!) {
  conversation(id: $id) {
    messageCount
    messages(first: 100) { edges { node { id role content } } }
  }
}
"""
CONVERSATIONS = "{ conversations(first: 100) { totalCount } }"
CREATE_TASK = "mutation($title: String!) { createTask(input: {title: $title}) { task { id } } }"
COMPLETE_TASK = "mutation($id: ID!) { completeTask(input: {id: $id}) { task { id } } }"
CREATE_CONVERSATION = (
    "mutation { createConversation(input: {}) { conversation { id updatedAt messageCount } } }"
)
DELETE_CONVERSATION = "mutation($id: ID!) { deleteConversation(input: {id: $id}) { deletedId } }"


async def send(
    client: GraphQLClient,
    content: str,
    conversation_id: str | None = None,
    client_message_id: str | None = None,
) -> dict[str, Any]:
    data = await client.data(
        SEND, {"input": send_input(content, conversation_id, client_message_id)}
    )
    payload: dict[str, Any] = data["sendMessage"]
    return payload


async def send_error_code(
    client: GraphQLClient,
    content: str,
    conversation_id: str | None = None,
    client_message_id: str | None = None,
) -> str:
    variables = {"input": send_input(content, conversation_id, client_message_id)}
    return await client.error_code(SEND, variables)


async def messages_of(client: GraphQLClient, conversation_id: str) -> list[dict[str, Any]]:
    conversation = (await client.data(MESSAGES, {"id": conversation_id}))["conversation"]
    return [edge["node"] for edge in conversation["messages"]["edges"]]


async def message_count(client: GraphQLClient, conversation_id: str) -> int:
    count: int = (await client.data(MESSAGES, {"id": conversation_id}))["conversation"][
        "messageCount"
    ]
    return count


async def conversation_count(client: GraphQLClient) -> int:
    count: int = (await client.data(CONVERSATIONS))["conversations"]["totalCount"]
    return count


async def create_task(client: GraphQLClient, title: str, *, completed: bool = False) -> str:
    task_id: str = (await client.data(CREATE_TASK, {"title": title}))["createTask"]["task"]["id"]
    if completed:
        await client.data(COMPLETE_TASK, {"id": task_id})
    return task_id


# --- phrasings ---------------------------------------------------------------------------

MILK = [("buy milk", "PENDING")]
DONE_MILK = [("buy milk", "COMPLETED")]
MOM = [("call mom", "PENDING")]
MILK_AND_DONE_DOG = [("buy milk", "PENDING"), ("walk dog", "COMPLETED")]


def phrasing(
    text: str,
    before: list[tuple[str, str]],
    tool: str | None,
    arguments: dict[str, str] | None,
    after: list[tuple[str, str]],
    listed: list[str] | None = None,
) -> Any:
    return pytest.param(text, before, tool, arguments, after, listed, id=text)


PHRASINGS = [
    phrasing("add a task to buy milk", [], "add_task", {"title": "buy milk"}, MILK),
    phrasing("add task: buy milk", [], "add_task", {"title": "buy milk"}, MILK),
    phrasing("remind me to call mom", [], "add_task", {"title": "call mom"}, MOM),
    phrasing(
        "list my tasks",
        MILK_AND_DONE_DOG,
        "list_tasks",
        {},
        MILK_AND_DONE_DOG,
        ["buy milk", "walk dog"],
    ),
    phrasing(
        "show my pending tasks",
        MILK_AND_DONE_DOG,
        "list_tasks",
        {"status": "PENDING"},
        MILK_AND_DONE_DOG,
        ["buy milk"],
    ),
    phrasing(
        "what have I completed",
        MILK_AND_DONE_DOG,
        "list_tasks",
        {"status": "COMPLETED"},
        MILK_AND_DONE_DOG,
        ["walk dog"],
    ),
    phrasing("complete buy milk", MILK, "complete_task", {"title": "buy milk"}, DONE_MILK),
    phrasing("mark buy milk as done", MILK, "complete_task", {"title": "buy milk"}, DONE_MILK),
    phrasing(
        "rename buy milk to buy oat milk",
        MILK,
        "update_task",
        {"title": "buy milk", "new_title": "buy oat milk"},
        [("buy oat milk", "PENDING")],
    ),
    phrasing("delete buy milk", MILK, "delete_task", {"title": "buy milk"}, []),
    phrasing("remove the task buy milk", MILK, "delete_task", {"title": "buy milk"}, []),
    phrasing("what's the weather", MILK, None, None, MILK),
]


@pytest.mark.parametrize(("text", "before", "tool", "arguments", "after", "listed"), PHRASINGS)
async def test_phrasing_calls_the_expected_tool_and_changes_tasks(
    alice: GraphQLClient,
    text: str,
    before: list[tuple[str, str]],
    tool: str | None,
    arguments: dict[str, str] | None,
    after: list[tuple[str, str]],
    listed: list[str] | None,
) -> None:
    for title, status in before:
        await create_task(alice, title, completed=status == "COMPLETED")

    reply = (await send(alice, text))["message"]

    if tool is None:
        assert reply["toolCalls"] == []
        assert "didn't understand" in reply["content"]
    else:
        [tool_call] = reply["toolCalls"]
        assert (tool_call["name"], tool_call["arguments"]) == (tool, arguments)
        assert tool_call["ok"] is True
        assert tool_call["result"]["ok"] is True
        assert reply["content"]
    if listed is not None:
        assert sorted(task["title"] for task in reply["toolCalls"][0]["result"]["tasks"]) == listed
        for title in listed:
            assert title in reply["content"]
    assert await tasks_of(alice) == sorted(after)


# --- the payload ---------------------------------------------------------------------------


async def test_send_message_payload_has_both_messages_and_bumps_the_conversation(
    alice: GraphQLClient,
) -> None:
    created = (await alice.data(CREATE_CONVERSATION))["createConversation"]["conversation"]

    payload = await send(alice, "  add task: buy milk \n", created["id"], "key-payload-1")

    conversation, question, reply = (
        payload["conversation"],
        payload["userMessage"],
        payload["message"],
    )
    assert conversation["id"] == created["id"]
    assert conversation["messageCount"] == 2
    assert datetime.fromisoformat(conversation["updatedAt"]) > datetime.fromisoformat(
        created["updatedAt"]
    )
    assert question["role"] == "USER"
    assert question["content"] == "add task: buy milk"
    assert question["clientMessageId"] == "key-payload-1"
    assert question["toolCalls"] == []
    assert reply["role"] == "ASSISTANT"
    assert reply["content"] == 'Added "buy milk" to your tasks.'
    assert reply["clientMessageId"] is None
    assert [m["id"] for m in await messages_of(alice, created["id"])] == [
        question["id"],
        reply["id"],
    ]


async def test_first_message_starts_a_conversation_titled_after_it(alice: GraphQLClient) -> None:
    payload = await send(alice, "remind me to call mom")

    assert payload["conversation"]["messageCount"] == 2
    assert "call mom" in payload["conversation"]["title"]
    assert await conversation_count(alice) == 1


async def test_ambiguous_title_lists_both_candidates_and_changes_nothing(
    alice: GraphQLClient,
) -> None:
    first = await create_task(alice, "buy milk")
    second = await create_task(alice, "buy milk")

    [tool_call] = (await send(alice, "complete buy milk"))["message"]["toolCalls"]

    assert tool_call["name"] == "complete_task"
    assert tool_call["ok"] is False
    error = tool_call["result"]["error"]
    assert "2 tasks" in error
    assert first in error
    assert second in error
    assert await tasks_of(alice) == [("buy milk", "PENDING"), ("buy milk", "PENDING")]


# --- regenerateReply -------------------------------------------------------------------------


async def test_regenerate_replaces_the_last_reply_and_reruns_the_turn(alice: GraphQLClient) -> None:
    sent = await send(alice, "add a task to buy milk")
    conversation_id = sent["conversation"]["id"]
    old_reply = sent["message"]

    regenerated = (await alice.data(REGENERATE, {"input": {"conversationId": conversation_id}}))[
        "regenerateReply"
    ]

    new_reply = regenerated["message"]
    assert new_reply["id"] != old_reply["id"]
    assert regenerated["userMessage"]["id"] == sent["userMessage"]["id"]
    assert regenerated["conversation"]["messageCount"] == 2
    messages = await messages_of(alice, conversation_id)
    assert [m["id"] for m in messages] == [sent["userMessage"]["id"], new_reply["id"]]
    node = await alice.data("query($id: ID!) { node(id: $id) { id } }", {"id": old_reply["id"]})
    assert node == {"node": None}
    # the turn ran again, but the task its tool call added is not added twice: the new
    # reply's tool result is what had happened, marked as replayed
    [old_call] = old_reply["toolCalls"]
    [new_call] = new_reply["toolCalls"]
    assert (new_call["name"], new_call["arguments"], new_call["ok"]) == (
        "add_task",
        {"title": "buy milk"},
        True,
    )
    assert new_call["result"]["task"]["id"] == old_call["result"]["task"]["id"]
    assert new_call["result"]["replayed"] is True
    assert "replayed" not in old_call["result"]
    tasks = (await alice.data(TASKS))["tasks"]["edges"]
    assert [edge["node"]["id"] for edge in tasks] == [old_call["result"]["task"]["id"]]


async def test_regenerate_on_an_empty_conversation_is_bad_user_input(alice: GraphQLClient) -> None:
    conversation = (await alice.data(CREATE_CONVERSATION))["createConversation"]["conversation"]

    code = await alice.error_code(REGENERATE, {"input": {"conversationId": conversation["id"]}})

    assert code == "BAD_USER_INPUT"
    assert await message_count(alice, conversation["id"]) == 0


async def test_regenerate_on_a_deleted_or_foreign_conversation_is_not_found(
    alice: GraphQLClient, bob: GraphQLClient
) -> None:
    deleted = (await send(alice, "add task: buy milk"))["conversation"]["id"]
    await alice.data(DELETE_CONVERSATION, {"id": deleted})
    bobs = (await send(bob, "add task: bob's errand"))["conversation"]["id"]

    assert await alice.error_code(REGENERATE, {"input": {"conversationId": deleted}}) == "NOT_FOUND"
    assert await alice.error_code(REGENERATE, {"input": {"conversationId": bobs}}) == "NOT_FOUND"
    assert await message_count(bob, bobs) == 2
    assert await tasks_of(alice) == [("buy milk", "PENDING")]


# --- idempotency -----------------------------------------------------------------------------


async def test_same_client_message_id_twice_returns_the_first_result(alice: GraphQLClient) -> None:
    first = await send(alice, "add task: buy milk", client_message_id="key-seq")
    second = await send(alice, "add task: buy milk", client_message_id="key-seq")

    assert second["userMessage"]["id"] == first["userMessage"]["id"]
    assert second["message"]["id"] == first["message"]["id"]
    assert second["message"]["toolCalls"] == first["message"]["toolCalls"]
    assert second["conversation"]["messageCount"] == 2
    assert await tasks_of(alice) == [("buy milk", "PENDING")]
    assert await conversation_count(alice) == 1


@pytest.mark.parametrize("in_existing_conversation", [True, False], ids=["existing", "new"])
async def test_same_client_message_id_sent_concurrently_runs_once(
    alice: GraphQLClient, in_existing_conversation: bool
) -> None:
    """Regression: a loser of the key race replayed while still holding the conversation's
    turn lock (a self-deadlock), and its rollback expired the request's user row."""
    conversation_id = None
    if in_existing_conversation:
        conversation_id = (await alice.data(CREATE_CONVERSATION))["createConversation"][
            "conversation"
        ]["id"]

    answers = await asyncio.gather(
        *(send(alice, "add task: buy milk", conversation_id, "key-concurrent") for _ in range(3))
    )

    assert answers[1] == answers[0]
    assert answers[2] == answers[0]
    conversation_id = answers[0]["conversation"]["id"]
    messages = await messages_of(alice, conversation_id)
    assert [m["role"] for m in messages] == ["USER", "ASSISTANT"]
    assert await tasks_of(alice) == [("buy milk", "PENDING")]
    assert await conversation_count(alice) == 1


async def test_client_message_id_reused_in_another_conversation_is_bad_user_input(
    alice: GraphQLClient,
) -> None:
    await send(alice, "add task: buy milk", client_message_id="key-reused")
    other = (await alice.data(CREATE_CONVERSATION))["createConversation"]["conversation"]["id"]

    code = await send_error_code(alice, "add task: buy bread", other, "key-reused")

    assert code == "BAD_USER_INPUT"
    assert await message_count(alice, other) == 0
    assert await tasks_of(alice) == [("buy milk", "PENDING")]


# --- concurrency -----------------------------------------------------------------------------


async def test_concurrent_sends_to_one_conversation_come_out_question_answer(
    alice: GraphQLClient,
) -> None:
    conversation_id = (await alice.data(CREATE_CONVERSATION))["createConversation"]["conversation"][
        "id"
    ]

    await asyncio.gather(*(send(alice, f"add task: item {n}", conversation_id) for n in range(10)))

    messages = await messages_of(alice, conversation_id)
    assert len(messages) == 20
    assert [m["role"] for m in messages] == ["USER", "ASSISTANT"] * 10
    for question, answer in zip(messages[::2], messages[1::2], strict=True):
        item = question["content"].removeprefix("add task: ")
        assert answer["content"] == f'Added "{item}" to your tasks.'
    assert sorted(m["content"] for m in messages[::2]) == sorted(
        f"add task: item {n}" for n in range(10)
    )
    assert await tasks_of(alice) == sorted((f"item {n}", "PENDING") for n in range(10))


# --- rate limit ------------------------------------------------------------------------------


async def test_fourth_message_in_a_minute_is_rate_limited_and_leaves_nothing(
    server_factory: ServerFactory,
) -> None:
    live = await server_factory(rate_limit_per_minute=3)
    client = live.client(token_for(f"user-{uuid.uuid4()}"))
    conversation_id = (await send(client, "add task: one"))["conversation"]["id"]
    await send(client, "add task: two", conversation_id)
    await send(client, "add task: three", conversation_id)

    refused = await client.execute(
        SEND, {"input": send_input("add task: four", conversation_id, None)}
    )
    refused_new = await client.execute(SEND, {"input": send_input("add task: five", None, None)})

    for payload in (refused, refused_new):
        [error] = payload["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        retry_after = error["extensions"]["retryAfter"]
        assert isinstance(retry_after, int)
        assert 1 <= retry_after <= 60
        assert payload["data"] is None
    assert await message_count(client, conversation_id) == 6
    assert await conversation_count(client) == 1
    assert await tasks_of(client) == [("one", "PENDING"), ("three", "PENDING"), ("two", "PENDING")]


async def test_rate_limit_is_shared_by_two_instances_on_one_database(
    server_factory: ServerFactory,
) -> None:
    first = await server_factory(rate_limit_per_minute=4)
    second = await server_factory(rate_limit_per_minute=4)
    token = token_for(f"user-{uuid.uuid4()}")
    through_first, through_second = first.client(token), second.client(token)
    for n in range(2):
        await send(through_first, f"add task: first {n}")
        await send(through_second, f"add task: second {n}")

    assert await send_error_code(through_first, "add task: too many") == "RATE_LIMITED"
    assert await send_error_code(through_second, "add task: too many") == "RATE_LIMITED"
    assert await conversation_count(through_first) == 4
    assert len(await tasks_of(through_second)) == 4
