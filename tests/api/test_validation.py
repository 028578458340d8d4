"""Input validation: every bad input answers `BAD_USER_INPUT` and changes nothing; odd but
valid strings are stored verbatim; the limits themselves are accepted."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import GraphQLClient

MAX_MESSAGE_CHARS = 5000  # the default of MAX_MESSAGE_CHARS, which the test servers keep

CREATE_CONVERSATION = """
mutation($title: String) {
  createConversation(input: {title: $title}) { conversation { id title } }
}
"""
RENAME_CONVERSATION = """
mutation($id: ID!, $title: String!) {
  renameConversation(input: {id: $id, title: $title}) { conversation { id title } }
}
"""
CREATE_TASK = """
mutation($title: String!, $description: String) {
  createTask(input: {title: $title, description: $description}) { task { id title description } }
}
"""
UPDATE_TASK = """
mutation($id: ID!, $title: String, $description: String) {
  updateTask(input: {id: $id, title: $title, description: $description}) {
    task { id title description }
  }
}
"""
SEND_MESSAGE = """
mutation($input: SendMessageInput!) {
  sendMessage(input: $input) {
    conversation { id title }
    userMessage { id content }
    message { id }
  }
}
"""


@dataclass(frozen=True)
class Owned:
    """A user's conversation (with one exchange) and task, to aim bad inputs at."""

    conversation_id: str
    task_id: str
    message_id: str


async def _arrange(client: GraphQLClient) -> Owned:
    created = await client.data(CREATE_CONVERSATION, {"title": "Groceries"})
    conversation_id = created["createConversation"]["conversation"]["id"]
    task = await client.data(CREATE_TASK, {"title": "Water plants", "description": "the ferns"})
    turn = await client.data(
        SEND_MESSAGE, {"input": {"conversationId": conversation_id, "content": "list my tasks"}}
    )
    return Owned(
        conversation_id, task["createTask"]["task"]["id"], turn["sendMessage"]["userMessage"]["id"]
    )


@pytest.fixture
async def owned(alice: GraphQLClient) -> Owned:
    return await _arrange(alice)


async def _state(client: GraphQLClient, owned: Owned) -> dict[str, Any]:
    """What a client can see of its data: counts, titles, statuses, timestamps."""
    return await client.data(
        """
        query($conversation: ID!, $task: ID!) {
          active: conversations { totalCount edges { node { id title updatedAt } } }
          archived: conversations(status: ARCHIVED) { totalCount }
          tasks { totalCount edges { node { id title description status updatedAt } } }
          conversation(id: $conversation) {
            title status messageCount updatedAt
            messages { edges { node { id content } } }
          }
          task(id: $task) { title description status updatedAt }
        }
        """,
        {"conversation": owned.conversation_id, "task": owned.task_id},
    )


async def _codes(
    client: GraphQLClient, cases: dict[str, tuple[str, dict[str, Any]]]
) -> dict[str, Any]:
    """The first error code of each case (None when it succeeded). An error without a
    path did not come from a resolver (e.g. a variable of the wrong type): it is shown
    with its message, so it cannot pass for the application's own refusal."""
    outcomes: dict[str, Any] = {}
    for name, (query, variables) in cases.items():
        payload = await client.execute(query, variables)
        errors = payload.get("errors") or []
        if not errors:
            outcomes[name] = None
        elif errors[0].get("path"):
            outcomes[name] = errors[0]["extensions"]["code"]
        else:
            outcomes[name] = (errors[0]["extensions"].get("code"), errors[0]["message"])
    return outcomes


def _all_bad_input(cases: dict[str, Any]) -> dict[str, str]:
    return dict.fromkeys(cases, "BAD_USER_INPUT")


# --- text fields -------------------------------------------------------------------------


async def test_bad_task_title_and_description_are_refused_and_change_nothing(
    alice: GraphQLClient, owned: Owned
) -> None:
    before = await _state(alice, owned)
    task = owned.task_id
    cases = {
        "create_empty_title": (CREATE_TASK, {"title": ""}),
        "create_whitespace_title": (CREATE_TASK, {"title": " \t\n "}),
        "create_title_501": (CREATE_TASK, {"title": "t" * 501}),
        "create_description_5001": (CREATE_TASK, {"title": "ok", "description": "d" * 5001}),
        "create_title_with_nul": (CREATE_TASK, {"title": "buy\x00milk"}),
        "create_description_with_nul": (CREATE_TASK, {"title": "ok", "description": "a\x00b"}),
        "update_empty_title": (UPDATE_TASK, {"id": task, "title": ""}),
        "update_whitespace_title": (UPDATE_TASK, {"id": task, "title": "   "}),
        "update_title_501": (UPDATE_TASK, {"id": task, "title": "t" * 501}),
        "update_description_5001": (UPDATE_TASK, {"id": task, "description": "d" * 5001}),
        "update_title_with_nul": (UPDATE_TASK, {"id": task, "title": "x\x00"}),
    }

    assert await _codes(alice, cases) == _all_bad_input(cases)
    assert await _state(alice, owned) == before


async def test_bad_conversation_titles_are_refused_and_change_nothing(
    alice: GraphQLClient, owned: Owned
) -> None:
    before = await _state(alice, owned)
    conversation = owned.conversation_id
    cases = {
        "create_title_201": (CREATE_CONVERSATION, {"title": "c" * 201}),
        "create_title_with_nul": (CREATE_CONVERSATION, {"title": "a\x00b"}),
        "rename_title_201": (RENAME_CONVERSATION, {"id": conversation, "title": "c" * 201}),
        "rename_empty_title": (RENAME_CONVERSATION, {"id": conversation, "title": ""}),
        "rename_whitespace_title": (RENAME_CONVERSATION, {"id": conversation, "title": "  "}),
        "rename_title_with_nul": (RENAME_CONVERSATION, {"id": conversation, "title": "a\x00b"}),
    }

    assert await _codes(alice, cases) == _all_bad_input(cases)
    assert await _state(alice, owned) == before


@pytest.mark.parametrize(
    ("content", "client_message_id"),
    [
        ("", None),
        (" \n\t ", None),
        ("m" * (MAX_MESSAGE_CHARS + 1), None),
        ("add a task to buy\x00milk", None),
        ("add a task to buy milk", "k" * 256),
    ],
    ids=["empty", "whitespace", "too_long", "nul", "client_message_id_too_long"],
)
async def test_bad_message_is_refused_and_stores_nothing(
    alice: GraphQLClient, owned: Owned, content: str, client_message_id: str | None
) -> None:
    before = await _state(alice, owned)
    into_conversation = {"conversationId": owned.conversation_id, "content": content}
    new_conversation = {"content": content}
    if client_message_id is not None:
        into_conversation["clientMessageId"] = client_message_id
        new_conversation["clientMessageId"] = client_message_id
    cases = {
        "into_conversation": (SEND_MESSAGE, {"input": into_conversation}),
        "new_conversation": (SEND_MESSAGE, {"input": new_conversation}),
    }

    assert await _codes(alice, cases) == _all_bad_input(cases)
    after = await _state(alice, owned)
    assert after == before
    assert after["active"]["totalCount"] == 1  # no conversation was started
    assert after["conversation"]["messageCount"] == 2


# --- ids -----------------------------------------------------------------------------------


def _b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _malformed_ids(owned: Owned, expected_type: str) -> dict[str, str]:
    """Ids that are not ids of `expected_type`: garbage, and real ids of another type."""
    wrong_type = owned.task_id if expected_type == "Conversation" else owned.conversation_id
    return {
        "garbage": "xyz",
        "empty": "",
        "not_a_uuid": _b64url(f"{expected_type}:not-a-uuid"),
        "unknown_type": _b64url(f"Project:{uuid.uuid4()}"),
        "wrong_type": wrong_type,
        "message_id": owned.message_id,
        "type_without_uuid": base64.b64encode(f"{expected_type}:".encode()).decode(),
    }


ID_MUTATIONS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # name: (the type of id it takes, the mutation, the input besides the id)
    "renameConversation": (
        "Conversation",
        "mutation($input: RenameConversationInput!) "
        "{ renameConversation(input: $input) { conversation { id } } }",
        {"title": "renamed"},
    ),
    "archiveConversation": (
        "Conversation",
        "mutation($input: ConversationIdInput!) "
        "{ archiveConversation(input: $input) { conversation { id } } }",
        {},
    ),
    "restoreConversation": (
        "Conversation",
        "mutation($input: ConversationIdInput!) "
        "{ restoreConversation(input: $input) { conversation { id } } }",
        {},
    ),
    "deleteConversation": (
        "Conversation",
        "mutation($input: ConversationIdInput!) "
        "{ deleteConversation(input: $input) { deletedId } }",
        {},
    ),
    "updateTask": (
        "Task",
        "mutation($input: UpdateTaskInput!) { updateTask(input: $input) { task { id } } }",
        {"title": "renamed"},
    ),
    "completeTask": (
        "Task",
        "mutation($input: TaskIdInput!) { completeTask(input: $input) { task { id } } }",
        {},
    ),
    "reopenTask": (
        "Task",
        "mutation($input: TaskIdInput!) { reopenTask(input: $input) { task { id } } }",
        {},
    ),
    "deleteTask": (
        "Task",
        "mutation($input: TaskIdInput!) { deleteTask(input: $input) { deletedId } }",
        {},
    ),
    "sendMessage": (
        "Conversation",
        "mutation($input: SendMessageInput!) { sendMessage(input: $input) { message { id } } }",
        {"content": "add a task to buy milk"},
    ),
    "regenerateReply": (
        "Conversation",
        "mutation($input: RegenerateReplyInput!) "
        "{ regenerateReply(input: $input) { message { id } } }",
        {},
    ),
}


@pytest.mark.parametrize("mutation", ID_MUTATIONS)
async def test_malformed_id_is_refused_by_mutation_and_changes_nothing(
    alice: GraphQLClient, owned: Owned, mutation: str
) -> None:
    id_type, query, rest = ID_MUTATIONS[mutation]
    id_field = "conversationId" if mutation in {"sendMessage", "regenerateReply"} else "id"
    before = await _state(alice, owned)
    cases = {
        name: (query, {"input": {**rest, id_field: bad_id}})
        for name, bad_id in _malformed_ids(owned, id_type).items()
    }

    assert await _codes(alice, cases) == _all_bad_input(cases)
    assert await _state(alice, owned) == before


@pytest.mark.parametrize(
    ("field", "id_type"),
    [("conversation", "Conversation"), ("task", "Task"), ("node", "Task")],
)
async def test_malformed_id_is_refused_by_query(
    alice: GraphQLClient, owned: Owned, field: str, id_type: str
) -> None:
    query = f"query($id: ID!) {{ {field}(id: $id) {{ id }} }}"
    bad_ids = _malformed_ids(owned, id_type)
    if field == "node":  # any of our types is a node id: only garbage is malformed there
        bad_ids = {
            name: bad_ids[name] for name in ("garbage", "empty", "not_a_uuid", "unknown_type")
        }
    cases = {name: (query, {"id": bad_id}) for name, bad_id in bad_ids.items()}

    assert await _codes(alice, cases) == _all_bad_input(cases)


# --- pages and cursors -----------------------------------------------------------------------

CONNECTIONS = ("tasks", "conversations", "messages")
WINDOW_ARGS = "$first: Int, $last: Int, $after: String, $before: String"
WINDOW = "first: $first, last: $last, after: $after, before: $before"


def _page(connection: str, conversation_id: str, **window: int | str) -> tuple[str, dict[str, Any]]:
    """One page of a connection (messages: of `conversation_id`), as (query, variables)."""
    if connection == "messages":
        query = (
            f"query($conversation: ID!, {WINDOW_ARGS}) "
            f"{{ conversation(id: $conversation) {{ messages({WINDOW}) {{ totalCount }} }} }}"
        )
        return query, {"conversation": conversation_id, **window}
    return f"query({WINDOW_ARGS}) {{ {connection}({WINDOW}) {{ totalCount }} }}", window


@pytest.mark.parametrize("connection", CONNECTIONS)
async def test_page_size_out_of_range_is_refused(
    alice: GraphQLClient, owned: Owned, connection: str
) -> None:
    sizes = {
        "first_0": {"first": 0},
        "first_101": {"first": 101},
        "first_negative": {"first": -1},
        "last_0": {"last": 0},
        "last_101": {"last": 101},
        "last_negative": {"last": -1},
        "first_and_last": {"first": 1, "last": 1},
    }
    cases = {name: _page(connection, owned.conversation_id, **size) for name, size in sizes.items()}

    assert await _codes(alice, cases) == _all_bad_input(cases)


def _flip(text: str, index: int) -> str:
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


async def test_forged_tampered_and_foreign_cursors_are_refused(
    alice: GraphQLClient, owned: Owned
) -> None:
    other = await alice.data(CREATE_CONVERSATION, {"title": "Another chat"})
    other_conversation = other["createConversation"]["conversation"]["id"]
    await alice.data(
        SEND_MESSAGE, {"input": {"conversationId": other_conversation, "content": "hello"}}
    )
    pages = await alice.data(
        """
        query($conversation: ID!) {
          tasks(first: 1) { pageInfo { endCursor } }
          conversations(first: 1) { pageInfo { endCursor } }
          conversation(id: $conversation) { messages(first: 1) { pageInfo { endCursor } } }
        }
        """,
        {"conversation": owned.conversation_id},
    )
    task_cursor = pages["tasks"]["pageInfo"]["endCursor"]
    conversation_cursor = pages["conversations"]["pageInfo"]["endCursor"]
    message_cursor = pages["conversation"]["messages"]["pageInfo"]["endCursor"]

    def page(connection: str, **window: int | str) -> tuple[str, dict[str, Any]]:
        return _page(connection, owned.conversation_id, **window)

    cases = {
        "forged_after": page("tasks", after="abc"),
        "forged_before": page("conversations", last=5, before="abc"),
        "empty_cursor": page("tasks", after=""),
        "task_cursor_on_conversations": page("conversations", after=task_cursor),
        "conversation_cursor_on_tasks": page("tasks", after=conversation_cursor),
        "task_cursor_on_messages": page("messages", after=task_cursor),
        "message_cursor_of_another_conversation": _page(
            "messages", other_conversation, after=message_cursor
        ),
        "tampered_signature": page("tasks", after=_flip(task_cursor, 3)),
        "tampered_payload": page("tasks", after=_flip(task_cursor, len(task_cursor) - 6)),
    }

    assert await _codes(alice, cases) == _all_bad_input(cases)
    # the genuine cursors still work
    genuine = {
        "tasks": page("tasks", after=task_cursor),
        "conversations": page("conversations", after=conversation_cursor),
        "messages": page("messages", after=message_cursor),
    }
    assert await _codes(alice, genuine) == dict.fromkeys(genuine)


async def test_search_longer_than_200_chars_is_refused(alice: GraphQLClient) -> None:
    code = await alice.error_code(
        "query($s: String) { conversations(search: $s) { totalCount } }", {"s": "s" * 201}
    )
    assert code == "BAD_USER_INPUT"


# --- odd but valid strings ---------------------------------------------------------------

ODD_STRINGS = [
    "'); DROP TABLE tasks; --",
    "Robert'); --",
    "🥛 buy oat milk 👩🏽‍💻 ünïcödé 中文",
    "%_\\",
    '<script>alert("x")</script> & "quotes"',
    "first line\nsecond line",
]


@pytest.mark.parametrize(
    "text", ODD_STRINGS, ids=["sql", "bobby", "unicode", "like", "html", "lines"]
)
async def test_odd_strings_are_stored_verbatim(alice: GraphQLClient, text: str) -> None:
    task = await alice.data(CREATE_TASK, {"title": text, "description": text})
    task_id = task["createTask"]["task"]["id"]
    conversation = await alice.data(CREATE_CONVERSATION, {"title": text})
    conversation_id = conversation["createConversation"]["conversation"]["id"]
    turn = await alice.data(
        SEND_MESSAGE, {"input": {"conversationId": conversation_id, "content": text}}
    )
    renamed = await alice.data(RENAME_CONVERSATION, {"id": conversation_id, "title": f"re: {text}"})
    updated = await alice.data(UPDATE_TASK, {"id": task_id, "description": f"more {text}"})

    assert task["createTask"]["task"]["title"] == text
    assert conversation["createConversation"]["conversation"]["title"] == text
    assert turn["sendMessage"]["userMessage"]["content"] == text
    assert renamed["renameConversation"]["conversation"]["title"] == f"re: {text}"
    assert updated["updateTask"]["task"] == {
        "id": task_id,
        "title": text,
        "description": f"more {text}",
    }
    reread = await alice.data(
        """
        query($task: ID!, $conversation: ID!) {
          task(id: $task) { title description }
          conversation(id: $conversation) {
            title
            messages(first: 1) { edges { node { content } } }
          }
          tasks { edges { node { title } } }
        }
        """,
        {"task": task_id, "conversation": conversation_id},
    )
    assert reread["task"] == {"title": text, "description": f"more {text}"}
    assert reread["conversation"] == {
        "title": f"re: {text}",
        "messages": {"edges": [{"node": {"content": text}}]},
    }
    assert text in [edge["node"]["title"] for edge in reread["tasks"]["edges"]]


async def test_search_wildcards_match_literally(alice: GraphQLClient) -> None:
    for title in ("100%_\\ sure", "plain talk", "another plain one"):
        await alice.data(CREATE_CONVERSATION, {"title": title})
    query = "query($s: String) { conversations(search: $s) { edges { node { title } } } }"

    terms = ("%_\\", "%", "_", "\\")
    found = {}
    for term in terms:
        data = await alice.data(query, {"s": term})
        found[term] = [edge["node"]["title"] for edge in data["conversations"]["edges"]]

    assert found == {term: ["100%_\\ sure"] for term in terms}


# --- the limits themselves are accepted ----------------------------------------------------


async def test_titles_at_the_limit_are_accepted(alice: GraphQLClient) -> None:
    task_title = "t" * 499 + "!"
    emoji_title = "🥛" * 500  # characters, not bytes
    conversation_title = "c" * 199 + "!"

    task = await alice.data(CREATE_TASK, {"title": task_title, "description": "d" * 5000})
    emoji = await alice.data(CREATE_TASK, {"title": emoji_title})
    conversation = await alice.data(CREATE_CONVERSATION, {"title": conversation_title})
    renamed = await alice.data(
        RENAME_CONVERSATION,
        {"id": conversation["createConversation"]["conversation"]["id"], "title": "r" * 200},
    )

    assert task["createTask"]["task"]["title"] == task_title
    assert task["createTask"]["task"]["description"] == "d" * 5000
    assert emoji["createTask"]["task"]["title"] == emoji_title
    assert conversation["createConversation"]["conversation"]["title"] == conversation_title
    assert renamed["renameConversation"]["conversation"]["title"] == "r" * 200
    reread = await alice.data("{ tasks { totalCount edges { node { title } } } }")
    assert reread["tasks"]["totalCount"] == 2
    assert {edge["node"]["title"] for edge in reread["tasks"]["edges"]} == {task_title, emoji_title}


async def test_message_of_max_chars_is_accepted(alice: GraphQLClient) -> None:
    content = "m" * MAX_MESSAGE_CHARS
    turn = await alice.data(SEND_MESSAGE, {"input": {"content": content}})
    assert turn["sendMessage"]["userMessage"]["content"] == content


async def test_page_sizes_1_and_100_are_accepted(alice: GraphQLClient) -> None:
    for number in range(3):
        await alice.data(CREATE_TASK, {"title": f"task {number}"})
    query = """
    query($first: Int, $last: Int) {
      tasks(first: $first, last: $last) { totalCount edges { node { title } } }
    }
    """

    first_1 = await alice.data(query, {"first": 1})
    first_100 = await alice.data(query, {"first": 100})
    last_1 = await alice.data(query, {"last": 1})
    last_100 = await alice.data(query, {"last": 100})

    def titles(data: dict[str, Any]) -> list[str]:
        return [edge["node"]["title"] for edge in data["tasks"]["edges"]]

    assert titles(first_1) == ["task 2"]
    assert titles(first_100) == ["task 2", "task 1", "task 0"]
    assert titles(last_1) == ["task 0"]
    assert titles(last_100) == ["task 2", "task 1", "task 0"]
    assert first_1["tasks"]["totalCount"] == 3
