"""Every read and write is scoped to the token's user: another user's object does not exist
for you (`null` from reads, `NOT_FOUND` from mutations), exactly like a deleted object or an
id that never existed, and nothing of it changes when you try."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from core.ids import to_global_id
from tests.conftest import GraphQLClient

CREATE_CONVERSATION = """
mutation($title: String) { createConversation(input: {title: $title}) { conversation { id } } }
"""
CREATE_TASK = """
mutation($title: String!, $description: String) {
  createTask(input: {title: $title, description: $description}) { task { id } }
}
"""
SEND_MESSAGE = """
mutation($input: SendMessageInput!) {
  sendMessage(input: $input) {
    conversation { id messageCount }
    userMessage { id }
    message { id toolCalls { name ok } }
  }
}
"""


@dataclass(frozen=True)
class Ids:
    """Global ids of one user's objects (or of objects that do not exist)."""

    conversation: str
    user_message: str
    reply: str
    task: str
    user: str


async def _arrange_data(client: GraphQLClient) -> Ids:
    """A conversation with one exchange (whose reply added a task), and a task."""
    created = await client.data(CREATE_CONVERSATION, {"title": "Private plans"})
    conversation_id = created["createConversation"]["conversation"]["id"]
    task = await client.data(CREATE_TASK, {"title": "Private task", "description": "secret"})
    turn = await client.data(
        SEND_MESSAGE,
        {"input": {"conversationId": conversation_id, "content": "add a task to buy milk"}},
    )
    assert turn["sendMessage"]["message"]["toolCalls"] == [{"name": "add_task", "ok": True}]
    me = await client.data("{ me { id } }")
    return Ids(
        conversation=conversation_id,
        user_message=turn["sendMessage"]["userMessage"]["id"],
        reply=turn["sendMessage"]["message"]["id"],
        task=task["createTask"]["task"]["id"],
        user=me["me"]["id"],
    )


def _random_ids() -> Ids:
    return Ids(
        conversation=to_global_id("Conversation", uuid.uuid4()),
        user_message=to_global_id("Message", uuid.uuid4()),
        reply=to_global_id("Message", uuid.uuid4()),
        task=to_global_id("Task", uuid.uuid4()),
        user=to_global_id("User", uuid.uuid4()),
    )


READ_BY_ID = """
query($conversation: ID!, $userMessage: ID!, $reply: ID!, $task: ID!, $user: ID!) {
  conversation(id: $conversation) { id title }
  task(id: $task) { id title }
  conversationNode: node(id: $conversation) { __typename id }
  userMessageNode: node(id: $userMessage) { __typename id }
  replyNode: node(id: $reply) { __typename id }
  taskNode: node(id: $task) { __typename id }
  userNode: node(id: $user) { __typename id }
}
"""


def _read_variables(ids: Ids) -> dict[str, str]:
    return {
        "conversation": ids.conversation,
        "userMessage": ids.user_message,
        "reply": ids.reply,
        "task": ids.task,
        "user": ids.user,
    }


async def _assert_reads_are_null(viewer: GraphQLClient, ids: Ids) -> None:
    data = await viewer.data(READ_BY_ID, _read_variables(ids))
    assert data == {
        "conversation": None,
        "task": None,
        "conversationNode": None,
        "userMessageNode": None,
        "replyNode": None,
        "taskNode": None,
        "userNode": None,
    }


def _mutations(ids: Ids) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every mutation that takes an id, aimed at `ids`."""
    conversation = {"id": ids.conversation}
    task = {"id": ids.task}
    return {
        "renameConversation": (
            "mutation($input: RenameConversationInput!) "
            "{ renameConversation(input: $input) { conversation { id title } } }",
            {"input": {**conversation, "title": "hijacked"}},
        ),
        "archiveConversation": (
            "mutation($input: ConversationIdInput!) "
            "{ archiveConversation(input: $input) { conversation { id status } } }",
            {"input": conversation},
        ),
        "restoreConversation": (
            "mutation($input: ConversationIdInput!) "
            "{ restoreConversation(input: $input) { conversation { id status } } }",
            {"input": conversation},
        ),
        "deleteConversation": (
            "mutation($input: ConversationIdInput!) "
            "{ deleteConversation(input: $input) { deletedId } }",
            {"input": conversation},
        ),
        "updateTask": (
            "mutation($input: UpdateTaskInput!) "
            "{ updateTask(input: $input) { task { id title } } }",
            {"input": {**task, "title": "hijacked", "description": "hijacked"}},
        ),
        "completeTask": (
            "mutation($input: TaskIdInput!) { completeTask(input: $input) { task { id status } } }",
            {"input": task},
        ),
        "reopenTask": (
            "mutation($input: TaskIdInput!) { reopenTask(input: $input) { task { id status } } }",
            {"input": task},
        ),
        "deleteTask": (
            "mutation($input: TaskIdInput!) { deleteTask(input: $input) { deletedId } }",
            {"input": task},
        ),
        "sendMessage": (
            SEND_MESSAGE,
            {"input": {"conversationId": ids.conversation, "content": "delete buy milk"}},
        ),
        "regenerateReply": (
            "mutation($input: RegenerateReplyInput!) "
            "{ regenerateReply(input: $input) { message { id content } } }",
            {"input": {"conversationId": ids.conversation}},
        ),
    }


async def _assert_mutations_are_not_found(viewer: GraphQLClient, ids: Ids) -> None:
    outcomes = {}
    for name, (query, variables) in _mutations(ids).items():
        payload = await viewer.execute(query, variables)
        codes = [error["extensions"]["code"] for error in payload.get("errors") or []]
        outcomes[name] = (payload.get("data"), codes)
    assert outcomes == dict.fromkeys(_mutations(ids), (None, ["NOT_FOUND"]))


LISTS = """
{
  active: conversations { totalCount edges { node { id } } }
  archived: conversations(status: ARCHIVED) { totalCount edges { node { id } } }
  searched: conversations(search: "milk") { totalCount edges { node { id } } }
  tasks { totalCount edges { node { id } } }
  pending: tasks(status: PENDING) { totalCount edges { node { id } } }
}
"""
EMPTY_LISTS = {
    name: {"totalCount": 0, "edges": []}
    for name in ("active", "archived", "searched", "tasks", "pending")
}


async def _snapshot(owner: GraphQLClient, ids: Ids) -> dict[str, Any]:
    """Everything a client can see of the owner's data, timestamps included."""
    return await owner.data(
        """
        query($conversation: ID!, $task: ID!) {
          conversation(id: $conversation) {
            title status messageCount updatedAt
            messages { edges { node { id role content } } }
          }
          task(id: $task) { title description status updatedAt completedAt }
          tasks { totalCount edges { node { id title status updatedAt } } }
          conversations { totalCount edges { node { id title updatedAt } } }
        }
        """,
        {"conversation": ids.conversation, "task": ids.task},
    )


async def test_other_users_objects_are_null_from_every_read(
    alice: GraphQLClient, bob: GraphQLClient
) -> None:
    ids = await _arrange_data(alice)
    own = await alice.data(READ_BY_ID, _read_variables(ids))
    assert own["conversation"]["title"] == "Private plans"
    assert [
        own[f"{kind}Node"]["__typename"] for kind in ("conversation", "userMessage", "reply")
    ] == [
        "Conversation",
        "Message",
        "Message",
    ]
    assert (own["taskNode"]["__typename"], own["userNode"]["__typename"]) == ("Task", "User")

    await _assert_reads_are_null(bob, ids)


async def test_other_users_objects_are_missing_from_your_lists(
    alice: GraphQLClient, bob: GraphQLClient
) -> None:
    await _arrange_data(alice)
    own = await alice.data(LISTS)
    assert (own["active"]["totalCount"], own["tasks"]["totalCount"]) == (1, 2)
    assert own["searched"]["totalCount"] == 1

    assert await bob.data(LISTS) == EMPTY_LISTS


async def test_mutations_on_other_users_objects_are_not_found_and_change_nothing(
    alice: GraphQLClient, bob: GraphQLClient
) -> None:
    ids = await _arrange_data(alice)
    before = await _snapshot(alice, ids)
    assert before["conversation"]["messageCount"] == 2
    assert before["task"]["status"] == "PENDING"

    await _assert_mutations_are_not_found(bob, ids)

    assert await _snapshot(alice, ids) == before
    # a failed sendMessage created nothing on bob's side either
    assert await bob.data(LISTS) == EMPTY_LISTS


async def test_other_users_completed_task_and_archived_conversation_cannot_be_reopened(
    alice: GraphQLClient, bob: GraphQLClient
) -> None:
    ids = await _arrange_data(alice)
    await alice.data(
        "mutation($id: ID!) { completeTask(input: {id: $id}) { task { id } } }", {"id": ids.task}
    )
    await alice.data(
        "mutation($id: ID!) { archiveConversation(input: {id: $id}) { conversation { id } } }",
        {"id": ids.conversation},
    )
    before = await _snapshot(alice, ids)
    assert (before["task"]["status"], before["conversation"]["status"]) == ("COMPLETED", "ARCHIVED")

    await _assert_mutations_are_not_found(bob, ids)

    assert await _snapshot(alice, ids) == before


async def test_deleted_objects_behave_like_other_users(alice: GraphQLClient) -> None:
    ids = await _arrange_data(alice)
    await alice.data(
        "mutation($id: ID!) { deleteConversation(input: {id: $id}) { deletedId } }",
        {"id": ids.conversation},
    )
    await alice.data(
        "mutation($id: ID!) { deleteTask(input: {id: $id}) { deletedId } }", {"id": ids.task}
    )
    lists_before = await alice.data(LISTS)
    gone = Ids(ids.conversation, ids.user_message, ids.reply, ids.task, _random_ids().user)

    await _assert_reads_are_null(alice, gone)
    await _assert_mutations_are_not_found(alice, gone)

    assert await alice.data(LISTS) == lists_before
    assert lists_before["active"]["totalCount"] == 0


async def test_never_existing_ids_behave_like_other_users(bob: GraphQLClient) -> None:
    ids = _random_ids()

    await _assert_reads_are_null(bob, ids)
    await _assert_mutations_are_not_found(bob, ids)

    assert await bob.data(LISTS) == EMPTY_LISTS


async def test_cursor_from_another_users_list_is_refused(
    alice: GraphQLClient, bob: GraphQLClient
) -> None:
    alice_ids = await _arrange_data(alice)
    bob_ids = await _arrange_data(bob)
    alice_pages = await alice.data(
        """
        query($conversation: ID!) {
          tasks(first: 1) { pageInfo { endCursor } }
          conversations(first: 1) { pageInfo { endCursor } }
          conversation(id: $conversation) { messages(first: 1) { pageInfo { endCursor } } }
        }
        """,
        {"conversation": alice_ids.conversation},
    )
    task_cursor = alice_pages["tasks"]["pageInfo"]["endCursor"]
    conversation_cursor = alice_pages["conversations"]["pageInfo"]["endCursor"]
    message_cursor = alice_pages["conversation"]["messages"]["pageInfo"]["endCursor"]

    outcomes = {
        "tasks_after": await bob.error_code(
            "query($c: String) { tasks(after: $c) { totalCount } }", {"c": task_cursor}
        ),
        "tasks_before": await bob.error_code(
            "query($c: String) { tasks(last: 5, before: $c) { totalCount } }", {"c": task_cursor}
        ),
        "conversations_after": await bob.error_code(
            "query($c: String) { conversations(after: $c) { totalCount } }",
            {"c": conversation_cursor},
        ),
        "messages_after": await bob.error_code(
            "query($id: ID!, $c: String) "
            "{ conversation(id: $id) { messages(after: $c) { totalCount } } }",
            {"id": bob_ids.conversation, "c": message_cursor},
        ),
    }
    assert outcomes == dict.fromkeys(outcomes, "BAD_USER_INPUT")


async def test_same_client_message_id_from_two_users_never_replays_the_other_users_turn(
    alice: GraphQLClient, bob: GraphQLClient
) -> None:
    key = f"retry-key-{uuid.uuid4()}"
    alice_turn = await alice.data(
        SEND_MESSAGE, {"input": {"content": "add a task to buy milk", "clientMessageId": key}}
    )
    bob_turn = await bob.data(
        SEND_MESSAGE, {"input": {"content": "remind me to call mom", "clientMessageId": key}}
    )

    alice_ids = {alice_turn["sendMessage"][part]["id"] for part in ("userMessage", "message")}
    bob_ids = {bob_turn["sendMessage"][part]["id"] for part in ("userMessage", "message")}
    assert alice_ids.isdisjoint(bob_ids)
    assert (
        bob_turn["sendMessage"]["conversation"]["id"]
        != alice_turn["sendMessage"]["conversation"]["id"]
    )
    bob_tasks = await bob.data("{ tasks { edges { node { title } } } }")
    assert [edge["node"]["title"] for edge in bob_tasks["tasks"]["edges"]] == ["call mom"]
