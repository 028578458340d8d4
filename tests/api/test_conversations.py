"""Conversations: create, rename, archive, restore, delete, search, and what a
conversation shows of its messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.conftest import GraphQLClient

CONVERSATION_FIELDS = "id title status createdAt updatedAt"

CREATE = f"""
mutation($title: String) {{
  createConversation(input: {{title: $title}}) {{ conversation {{ {CONVERSATION_FIELDS} }} }}
}}"""
CREATE_WITHOUT_TITLE = f"""
mutation {{ createConversation(input: {{}}) {{ conversation {{ {CONVERSATION_FIELDS} }} }} }}
"""
RENAME = f"""
mutation($id: ID!, $title: String!) {{
  renameConversation(input: {{id: $id, title: $title}}) {{
    conversation {{ {CONVERSATION_FIELDS} }}
  }}
}}"""
ARCHIVE = f"""
mutation($id: ID!) {{
  archiveConversation(input: {{id: $id}}) {{ conversation {{ {CONVERSATION_FIELDS} }} }}
}}"""
RESTORE = f"""
mutation($id: ID!) {{
  restoreConversation(input: {{id: $id}}) {{ conversation {{ {CONVERSATION_FIELDS} }} }}
}}"""
DELETE = "mutation($id: ID!) { deleteConversation(input: {id: $id}) { deletedId } }"
LIST = """
query($status: ConversationStatus, $search: String) {
  conversations(first: 100, status: $status, search: $search) {
    totalCount
    edges { node { id title status } }
  }
}"""
CONVERSATION = f"query($id: ID!) {{ conversation(id: $id) {{ {CONVERSATION_FIELDS} }} }}"
NODE = "query($id: ID!) { node(id: $id) { id } }"
SEND = """
mutation($conversationId: ID, $content: String!) {
  sendMessage(input: {conversationId: $conversationId, content: $content}) {
    conversation { id title messageCount }
    userMessage { id role content }
    message { id role content }
  }
}"""


async def create(client: GraphQLClient, title: str | None = None) -> dict[str, Any]:
    data = await client.data(CREATE, {"title": title})
    return data["createConversation"]["conversation"]  # type: ignore[no-any-return]


async def send(
    client: GraphQLClient, content: str, conversation_id: str | None = None
) -> dict[str, Any]:
    data = await client.data(SEND, {"conversationId": conversation_id, "content": content})
    return data["sendMessage"]  # type: ignore[no-any-return]


async def listed_ids(
    client: GraphQLClient, status: str | None = None, search: str | None = None
) -> list[str]:
    data = await client.data(LIST, {"status": status, "search": search})
    connection = data["conversations"]
    ids = [edge["node"]["id"] for edge in connection["edges"]]
    assert connection["totalCount"] == len(ids)
    return ids


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --- create ------------------------------------------------------------------------------


async def test_new_conversation_without_title_is_called_new_conversation(
    alice: GraphQLClient,
) -> None:
    omitted = (await alice.data(CREATE_WITHOUT_TITLE))["createConversation"]["conversation"]
    blank = await create(alice, "   ")
    null = await create(alice, None)
    assert [omitted["title"], blank["title"], null["title"]] == ["New conversation"] * 3
    assert omitted["status"] == "ACTIVE"
    assert omitted["createdAt"] == omitted["updatedAt"]


async def test_new_conversation_title_is_trimmed(alice: GraphQLClient) -> None:
    conversation = await create(alice, "  Trip to Lisbon \n")
    assert conversation["title"] == "Trip to Lisbon"
    fetched = await alice.data(CONVERSATION, {"id": conversation["id"]})
    assert fetched["conversation"] == conversation


async def test_new_conversation_has_no_messages(alice: GraphQLClient) -> None:
    conversation = await create(alice, "quiet")
    data = await alice.data(
        """query($id: ID!) { conversation(id: $id) {
             messageCount lastMessage { id } messages { totalCount edges { cursor } } } }""",
        {"id": conversation["id"]},
    )
    assert data["conversation"] == {
        "messageCount": 0,
        "lastMessage": None,
        "messages": {"totalCount": 0, "edges": []},
    }


# --- rename, archive, restore ------------------------------------------------------------


async def test_rename_moves_conversation_to_the_top(alice: GraphQLClient) -> None:
    older = await create(alice, "older")
    newer = await create(alice, "newer")
    assert await listed_ids(alice) == [newer["id"], older["id"]]

    renamed = (await alice.data(RENAME, {"id": older["id"], "title": "  renamed  "}))[
        "renameConversation"
    ]["conversation"]

    assert renamed["title"] == "renamed"
    assert renamed["createdAt"] == older["createdAt"]
    assert instant(renamed["updatedAt"]) > instant(older["updatedAt"])
    assert await listed_ids(alice) == [older["id"], newer["id"]]
    fetched = (await alice.data(CONVERSATION, {"id": older["id"]}))["conversation"]
    assert fetched["title"] == "renamed"


async def test_rename_to_blank_title_is_bad_user_input(alice: GraphQLClient) -> None:
    conversation = await create(alice, "keep me")
    code = await alice.error_code(RENAME, {"id": conversation["id"], "title": "  "})
    assert code == "BAD_USER_INPUT"
    fetched = (await alice.data(CONVERSATION, {"id": conversation["id"]}))["conversation"]
    assert fetched["title"] == "keep me"


async def test_archived_conversation_leaves_the_active_list_until_restored(
    alice: GraphQLClient,
) -> None:
    kept = await create(alice, "kept")
    shelved = await create(alice, "shelved")

    archived = (await alice.data(ARCHIVE, {"id": shelved["id"]}))["archiveConversation"][
        "conversation"
    ]
    assert archived["status"] == "ARCHIVED"
    assert await listed_ids(alice) == [kept["id"]]
    assert await listed_ids(alice, "ACTIVE") == [kept["id"]]
    assert await listed_ids(alice, "ARCHIVED") == [shelved["id"]]
    still_readable = (await alice.data(CONVERSATION, {"id": shelved["id"]}))["conversation"]
    assert still_readable["status"] == "ARCHIVED"

    restored = (await alice.data(RESTORE, {"id": shelved["id"]}))["restoreConversation"][
        "conversation"
    ]
    assert restored["status"] == "ACTIVE"
    assert await listed_ids(alice, "ARCHIVED") == []
    assert sorted(await listed_ids(alice)) == sorted([kept["id"], shelved["id"]])


# --- delete ------------------------------------------------------------------------------


async def test_deleted_conversation_and_its_messages_disappear_everywhere(
    alice: GraphQLClient,
) -> None:
    turn = await send(alice, "add a task to buy zucchini")
    conversation_id = turn["conversation"]["id"]
    other = await create(alice, "zucchini recipes, unrelated")

    deleted = await alice.data(DELETE, {"id": conversation_id})

    assert deleted["deleteConversation"]["deletedId"] == conversation_id
    assert (await alice.data(CONVERSATION, {"id": conversation_id}))["conversation"] is None
    for node_id in (conversation_id, turn["userMessage"]["id"], turn["message"]["id"]):
        assert (await alice.data(NODE, {"id": node_id}))["node"] is None, node_id
    assert await listed_ids(alice) == [other["id"]]
    assert await listed_ids(alice, "ARCHIVED") == []
    assert await listed_ids(alice, search="zucchini") == [other["id"]]
    assert await listed_ids(alice, search="buy zucchini") == []


async def test_deleted_archived_conversation_is_not_listed_as_archived(
    alice: GraphQLClient,
) -> None:
    conversation = await create(alice, "old")
    await alice.data(ARCHIVE, {"id": conversation["id"]})
    await alice.data(DELETE, {"id": conversation["id"]})
    assert await listed_ids(alice, "ARCHIVED") == []
    assert await listed_ids(alice) == []


async def test_mutations_on_a_deleted_conversation_are_not_found(alice: GraphQLClient) -> None:
    conversation = await create(alice, "short-lived")
    await alice.data(DELETE, {"id": conversation["id"]})

    conversation_id = conversation["id"]
    assert await alice.error_code(DELETE, {"id": conversation_id}) == "NOT_FOUND"
    assert await alice.error_code(RENAME, {"id": conversation_id, "title": "x"}) == "NOT_FOUND"
    assert await alice.error_code(ARCHIVE, {"id": conversation_id}) == "NOT_FOUND"
    assert await alice.error_code(RESTORE, {"id": conversation_id}) == "NOT_FOUND"
    code = await alice.error_code(SEND, {"conversationId": conversation_id, "content": "hi"})
    assert code == "NOT_FOUND"


async def test_other_users_conversation_does_not_exist_for_you(
    alice: GraphQLClient, bob: GraphQLClient
) -> None:
    conversation = await create(alice, "alice's")
    assert (await bob.data(CONVERSATION, {"id": conversation["id"]}))["conversation"] is None
    assert (await bob.data(NODE, {"id": conversation["id"]}))["node"] is None
    assert await bob.error_code(RENAME, {"id": conversation["id"], "title": "x"}) == "NOT_FOUND"
    assert await bob.error_code(DELETE, {"id": conversation["id"]}) == "NOT_FOUND"
    assert await listed_ids(bob) == []
    fetched = (await alice.data(CONVERSATION, {"id": conversation["id"]}))["conversation"]
    assert fetched == conversation


# --- sendMessage starts conversations ---------------------------------------------------


async def test_first_message_titles_a_new_conversation(alice: GraphQLClient) -> None:
    turn = await send(alice, "  add task: water plants\nand some more detail")
    assert turn["conversation"]["title"] == "add task: water plants"
    assert turn["conversation"]["messageCount"] == 2
    assert await listed_ids(alice) == [turn["conversation"]["id"]]


async def test_long_first_message_title_is_cut_to_sixty_characters(
    alice: GraphQLClient,
) -> None:
    sixty = "x" * 60
    exact = await send(alice, sixty)
    assert exact["conversation"]["title"] == sixty

    long_line = "Tell me a story about " + "a" * 40 + " and the sea"
    cut = await send(alice, long_line)
    title = cut["conversation"]["title"]
    assert title == long_line[:57] + "…"
    assert len(title) == 58


async def test_message_to_existing_conversation_keeps_its_title(alice: GraphQLClient) -> None:
    conversation = await create(alice, "Groceries")
    turn = await send(alice, "add a task to buy milk", conversation["id"])
    assert turn["conversation"]["id"] == conversation["id"]
    assert turn["conversation"]["title"] == "Groceries"


# --- search ------------------------------------------------------------------------------


async def test_search_matches_message_text_case_insensitively(alice: GraphQLClient) -> None:
    groceries = await create(alice, "Groceries")
    await send(alice, "add a task to buy milk", groceries["id"])
    await create(alice, "Unrelated")
    assert await listed_ids(alice, search="MILK") == [groceries["id"]]


async def test_search_matches_title_case_insensitively(alice: GraphQLClient) -> None:
    trip = await create(alice, "Weekend Trip")
    await create(alice, "Work")
    assert await listed_ids(alice, search="wEEKEND") == [trip["id"]]


async def test_search_treats_percent_and_underscore_literally(alice: GraphQLClient) -> None:
    percent = await create(alice, "100% done")
    underscore = await create(alice, "snake_case names")
    await create(alice, "snakeXcase names")
    await create(alice, "plain")

    assert await listed_ids(alice, search="%") == [percent["id"]]
    assert await listed_ids(alice, search="_") == [underscore["id"]]
    assert await listed_ids(alice, search="snake_case") == [underscore["id"]]


async def test_empty_search_means_no_filter(alice: GraphQLClient) -> None:
    first = await create(alice, "one")
    second = await create(alice, "two")
    everything = [second["id"], first["id"]]
    assert await listed_ids(alice, search="") == everything
    assert await listed_ids(alice, search=None) == everything


async def test_search_only_finds_your_own_conversations(
    alice: GraphQLClient, bob: GraphQLClient
) -> None:
    await create(alice, "secret plans")
    mine = await create(bob, "my plans")
    assert await listed_ids(bob, search="plans") == [mine["id"]]


async def test_search_within_archived_conversations(alice: GraphQLClient) -> None:
    archived = await create(alice, "archived groceries")
    await create(alice, "active groceries")
    await alice.data(ARCHIVE, {"id": archived["id"]})
    assert await listed_ids(alice, "ARCHIVED", search="groceries") == [archived["id"]]


# --- what a conversation shows of its messages ------------------------------------------

SUMMARY = """
query($id: ID!) {
  conversation(id: $id) {
    messageCount
    lastMessage { id role content conversation { id title } }
  }
}"""


async def test_message_count_and_last_message_follow_the_sends(alice: GraphQLClient) -> None:
    first = await send(alice, "add task: paint fence")
    conversation_id = first["conversation"]["id"]
    second = await send(alice, "list my tasks", conversation_id)

    summary = (await alice.data(SUMMARY, {"id": conversation_id}))["conversation"]

    assert summary["messageCount"] == 4
    assert summary["lastMessage"] == {
        "id": second["message"]["id"],
        "role": "ASSISTANT",
        "content": second["message"]["content"],
        "conversation": {"id": conversation_id, "title": "add task: paint fence"},
    }
    assert "paint fence" in second["message"]["content"]


async def test_message_conversation_resolves_back_to_its_conversation(
    alice: GraphQLClient,
) -> None:
    turn = await send(alice, "add task: sweep floor")
    conversation = turn["conversation"]
    data = await alice.data(
        """query($id: ID!) { node(id: $id) { ... on Message {
             role conversation { id title messageCount } } } }""",
        {"id": turn["userMessage"]["id"]},
    )
    assert data["node"] == {
        "role": "USER",
        "conversation": {
            "id": conversation["id"],
            "title": "add task: sweep floor",
            "messageCount": 2,
        },
    }


TOOL_CALLS = """
query($id: ID!) {
  conversation(id: $id) {
    messages { edges { node { role content toolCalls { id name arguments result ok } } } }
  }
}"""


async def test_reply_records_the_tool_calls_that_produced_it(alice: GraphQLClient) -> None:
    turn = await send(alice, "add a task to buy milk")
    data = await alice.data(TOOL_CALLS, {"id": turn["conversation"]["id"]})
    question, reply = [edge["node"] for edge in data["conversation"]["messages"]["edges"]]

    assert question["role"] == "USER"
    assert question["toolCalls"] == []
    assert reply["role"] == "ASSISTANT"
    assert len(reply["toolCalls"]) == 1
    call = reply["toolCalls"][0]
    assert call["name"] == "add_task"
    assert call["ok"] is True
    assert call["arguments"] == {"title": "buy milk"}
    assert call["result"]["task"]["title"] == "buy milk"
    assert call["id"]

    tasks = await alice.data("{ tasks { edges { node { id title } } } }")
    assert [edge["node"]["title"] for edge in tasks["tasks"]["edges"]] == ["buy milk"]
    assert call["result"]["task"]["id"] == tasks["tasks"]["edges"][0]["node"]["id"]


async def test_plain_reply_has_no_tool_calls(alice: GraphQLClient) -> None:
    turn = await send(alice, "hello there")
    data = await alice.data(TOOL_CALLS, {"id": turn["conversation"]["id"]})
    reply = data["conversation"]["messages"]["edges"][1]["node"]
    assert reply["role"] == "ASSISTANT"
    assert reply["content"]
    assert reply["toolCalls"] == []
