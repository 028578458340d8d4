"""Relay connections: keyset paging forward and backward over tasks, conversations and
a conversation's messages, with correct pageInfo and totalCount at every step."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from core.ids import parse_global_id
from db.models import Conversation, Task
from tests.conftest import GraphQLClient

Fetch = Callable[..., Awaitable[dict[str, Any]]]

PAGE_FIELDS = """
    totalCount
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
"""

TASKS = f"""
query Tasks($first: Int, $after: String, $last: Int, $before: String, $status: TaskStatus) {{
  tasks(first: $first, after: $after, last: $last, before: $before, status: $status) {{
    {PAGE_FIELDS}
  }}
}}"""

CONVERSATIONS = f"""
query Conversations($first: Int, $after: String, $last: Int, $before: String,
                    $status: ConversationStatus) {{
  conversations(first: $first, after: $after, last: $last, before: $before, status: $status) {{
    {PAGE_FIELDS}
  }}
}}"""

MESSAGES = f"""
query Messages($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {{
  conversation(id: $id) {{
    messages(first: $first, after: $after, last: $last, before: $before) {{
      {PAGE_FIELDS}
    }}
  }}
}}"""

CREATE_TASK = "mutation($title: String!) { createTask(input: {title: $title}) { task { id } } }"
COMPLETE_TASK = "mutation($id: ID!) { completeTask(input: {id: $id}) { task { id } } }"
CREATE_CONVERSATION = """
mutation($title: String) { createConversation(input: {title: $title}) { conversation { id } } }
"""
ARCHIVE_CONVERSATION = """
mutation($id: ID!) { archiveConversation(input: {id: $id}) { conversation { id } } }
"""
SEND = """
mutation($conversationId: ID, $content: String!) {
  sendMessage(input: {conversationId: $conversationId, content: $content}) {
    conversation { id }
    userMessage { id content }
    message { id content }
  }
}"""


def _variables(args: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in args.items() if value is not None}


def tasks_of(client: GraphQLClient, status: str | None = None) -> Fetch:
    async def fetch(**args: Any) -> dict[str, Any]:
        data = await client.data(TASKS, _variables({**args, "status": status}))
        return data["tasks"]  # type: ignore[no-any-return]

    return fetch


def conversations_of(client: GraphQLClient, status: str | None = None) -> Fetch:
    async def fetch(**args: Any) -> dict[str, Any]:
        data = await client.data(CONVERSATIONS, _variables({**args, "status": status}))
        return data["conversations"]  # type: ignore[no-any-return]

    return fetch


def messages_of(client: GraphQLClient, conversation_id: str) -> Fetch:
    async def fetch(**args: Any) -> dict[str, Any]:
        data = await client.data(MESSAGES, _variables({**args, "id": conversation_id}))
        return data["conversation"]["messages"]  # type: ignore[no-any-return]

    return fetch


def node_ids(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in connection["edges"]]


def assert_cursors_bound_page(connection: dict[str, Any]) -> None:
    edges, info = connection["edges"], connection["pageInfo"]
    assert edges, "a walk never lands on an empty page of a non-empty list"
    assert info["startCursor"] == edges[0]["cursor"]
    assert info["endCursor"] == edges[-1]["cursor"]


async def walk_forward(fetch: Fetch, size: int, total: int) -> list[str]:
    """All ids via first/after, checking pageInfo and totalCount on every page."""
    ids: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        connection = await fetch(first=size, after=after)
        info = connection["pageInfo"]
        assert connection["totalCount"] == total
        assert_cursors_bound_page(connection)
        assert info["hasPreviousPage"] is (pages > 0), (pages, info)
        ids += node_ids(connection)
        pages += 1
        if not info["hasNextPage"]:
            assert len(connection["edges"]) <= size
            return ids
        assert len(connection["edges"]) == size
        after = info["endCursor"]
        assert pages <= total, "the walk does not end"


async def walk_backward(fetch: Fetch, size: int, total: int) -> list[str]:
    """All ids via last/before, in display order, checking pageInfo on every page."""
    ids: list[str] = []
    before: str | None = None
    pages = 0
    while True:
        connection = await fetch(last=size, before=before)
        info = connection["pageInfo"]
        assert connection["totalCount"] == total
        assert_cursors_bound_page(connection)
        assert info["hasNextPage"] is (pages > 0), (pages, info)
        ids = node_ids(connection) + ids
        pages += 1
        if not info["hasPreviousPage"]:
            assert len(connection["edges"]) <= size
            return ids
        assert len(connection["edges"]) == size
        before = info["startCursor"]
        assert pages <= total, "the walk does not end"


async def assert_walks_both_ways(fetch: Fetch, size: int, expected: list[str]) -> None:
    forward = await walk_forward(fetch, size, len(expected))
    assert forward == expected
    backward = await walk_backward(fetch, size, len(expected))
    assert backward == forward


async def create_tasks(client: GraphQLClient, count: int, prefix: str = "task") -> list[str]:
    """Ids in creation order (oldest first)."""
    ids = []
    for number in range(count):
        data = await client.data(CREATE_TASK, {"title": f"{prefix} {number}"})
        ids.append(data["createTask"]["task"]["id"])
    return ids


async def create_conversations(client: GraphQLClient, count: int) -> list[str]:
    ids = []
    for number in range(count):
        data = await client.data(CREATE_CONVERSATION, {"title": f"conversation {number}"})
        ids.append(data["createConversation"]["conversation"]["id"])
    return ids


async def send_turns(client: GraphQLClient, contents: list[str]) -> tuple[str, list[str]]:
    """(conversation id, message ids oldest first: question, reply, question, reply, …)."""
    conversation_id: str | None = None
    ids: list[str] = []
    for content in contents:
        data = await client.data(SEND, {"conversationId": conversation_id, "content": content})
        turn = data["sendMessage"]
        conversation_id = turn["conversation"]["id"]
        ids += [turn["userMessage"]["id"], turn["message"]["id"]]
    assert conversation_id is not None
    return conversation_id, ids


# --- walks ---------------------------------------------------------------------------


async def test_tasks_walk_newest_first_both_ways(alice: GraphQLClient) -> None:
    created = await create_tasks(alice, 7)
    await assert_walks_both_ways(tasks_of(alice), 3, list(reversed(created)))


async def test_tasks_page_size_dividing_the_list_ends_without_an_empty_page(
    alice: GraphQLClient,
) -> None:
    created = await create_tasks(alice, 6)
    await assert_walks_both_ways(tasks_of(alice), 3, list(reversed(created)))


async def test_conversations_walk_most_recently_updated_first_both_ways(
    alice: GraphQLClient,
) -> None:
    created = await create_conversations(alice, 7)
    await assert_walks_both_ways(conversations_of(alice), 3, list(reversed(created)))


async def test_messages_walk_oldest_first_both_ways(alice: GraphQLClient) -> None:
    conversation_id, messages = await send_turns(
        alice, ["add task: t1", "add task: t2", "add task: t3", "add task: t4"]
    )
    assert len(messages) == 8
    await assert_walks_both_ways(messages_of(alice, conversation_id), 3, messages)


async def test_messages_last_without_cursor_gives_newest_in_oldest_first_order(
    alice: GraphQLClient,
) -> None:
    conversation_id, messages = await send_turns(alice, ["add task: a", "add task: b"])
    page = await messages_of(alice, conversation_id)(last=3)
    assert node_ids(page) == messages[-3:]
    assert page["pageInfo"]["hasPreviousPage"] is True
    assert page["pageInfo"]["hasNextPage"] is False
    assert page["totalCount"] == 4


async def test_messages_last_two_is_the_last_question_and_its_reply(
    alice: GraphQLClient,
) -> None:
    conversation_id, _ = await send_turns(alice, ["add task: wash car", "add task: oil"])
    last_turn = (
        await alice.data(SEND, {"conversationId": conversation_id, "content": "list my tasks"})
    )["sendMessage"]
    result = await alice.data(
        """query($id: ID!) { conversation(id: $id) {
             messages(last: 2) { edges { node { id role content } } } } }""",
        {"id": conversation_id},
    )
    nodes = [edge["node"] for edge in result["conversation"]["messages"]["edges"]]
    assert nodes == [
        {"id": last_turn["userMessage"]["id"], "role": "USER", "content": "list my tasks"},
        {
            "id": last_turn["message"]["id"],
            "role": "ASSISTANT",
            "content": last_turn["message"]["content"],
        },
    ]
    assert "wash car" in last_turn["message"]["content"]


async def test_messages_page_size_two_walks_both_ways(alice: GraphQLClient) -> None:
    conversation_id, messages = await send_turns(alice, ["add task: x", "add task: y"])
    await assert_walks_both_ways(messages_of(alice, conversation_id), 2, messages)


# --- pageInfo on empty lists and page sizes --------------------------------------------

EMPTY_PAGE = {
    "totalCount": 0,
    "edges": [],
    "pageInfo": {
        "hasNextPage": False,
        "hasPreviousPage": False,
        "startCursor": None,
        "endCursor": None,
    },
}


async def test_empty_lists_have_null_cursors_and_no_pages_either_way(
    alice: GraphQLClient,
) -> None:
    conversation_id = (await alice.data(CREATE_CONVERSATION, {"title": "empty"}))[
        "createConversation"
    ]["conversation"]["id"]
    for fetch in (
        tasks_of(alice),
        conversations_of(alice, "ARCHIVED"),
        messages_of(alice, conversation_id),
    ):
        assert await fetch(first=3) == EMPTY_PAGE
        assert await fetch(last=3) == EMPTY_PAGE
        assert await fetch() == EMPTY_PAGE


async def test_total_count_is_the_whole_list_on_every_page(alice: GraphQLClient) -> None:
    await create_tasks(alice, 5)
    fetch = tasks_of(alice)
    first_page = await fetch(first=2)
    middle = await fetch(first=2, after=first_page["pageInfo"]["endCursor"])
    tail = await fetch(last=1)
    assert [first_page["totalCount"], middle["totalCount"], tail["totalCount"]] == [5, 5, 5]
    assert len(middle["edges"]) == 2


async def test_default_page_size_is_twenty(alice: GraphQLClient) -> None:
    created = await create_tasks(alice, 21)
    page = await tasks_of(alice)()
    assert node_ids(page) == list(reversed(created))[:20]
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["pageInfo"]["hasPreviousPage"] is False
    assert page["totalCount"] == 21

    whole = await tasks_of(alice)(first=100)
    assert node_ids(whole) == list(reversed(created))
    assert whole["pageInfo"]["hasNextPage"] is False


async def test_page_size_outside_one_to_a_hundred_is_bad_user_input(
    alice: GraphQLClient,
) -> None:
    for variables in ({"first": 0}, {"first": 101}, {"last": 0}, {"last": 101}):
        assert await alice.error_code(TASKS, variables) == "BAD_USER_INPUT", variables


# --- deterministic order on equal sort keys ---------------------------------------------


async def test_quickly_created_tasks_page_without_duplicates_or_gaps(
    alice: GraphQLClient,
) -> None:
    created = await asyncio.gather(
        *(alice.data(CREATE_TASK, {"title": f"quick {number}"}) for number in range(15))
    )
    ids = {data["createTask"]["task"]["id"] for data in created}
    forward = await walk_forward(tasks_of(alice), 4, 15)
    backward = await walk_backward(tasks_of(alice), 4, 15)
    assert len(forward) == 15
    assert set(forward) == ids
    assert backward == forward


async def _set_timestamp(database_url: str, model: Any, column: str, ids: list[str]) -> None:
    """Gives the rows one identical timestamp, so only the id can order them."""
    same_instant = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    row_ids = [parse_global_id(global_id)[1] for global_id in ids]
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(model).where(model.id.in_(row_ids)).values({column: same_instant})
            )
    finally:
        await engine.dispose()


async def test_tasks_with_equal_timestamps_page_deterministically(
    alice: GraphQLClient, database_urls: dict[str, str], backend: str
) -> None:
    created = await create_tasks(alice, 7)
    await _set_timestamp(database_urls[backend], Task, "created_at", created)
    stamps = await alice.data("{ tasks { edges { node { createdAt } } } }")
    assert {edge["node"]["createdAt"] for edge in stamps["tasks"]["edges"]} == {
        "2024-01-01T12:00:00+00:00"
    }
    expected = await walk_forward(tasks_of(alice), 100, 7)
    assert sorted(expected) == sorted(created)
    await assert_walks_both_ways(tasks_of(alice), 2, expected)
    await assert_walks_both_ways(tasks_of(alice), 3, expected)


async def test_conversations_with_equal_timestamps_page_deterministically(
    alice: GraphQLClient, database_urls: dict[str, str], backend: str
) -> None:
    created = await create_conversations(alice, 7)
    await _set_timestamp(database_urls[backend], Conversation, "updated_at", created)
    stamps = await alice.data("{ conversations { edges { node { updatedAt } } } }")
    assert {edge["node"]["updatedAt"] for edge in stamps["conversations"]["edges"]} == {
        "2024-01-01T12:00:00+00:00"
    }
    expected = await walk_forward(conversations_of(alice), 100, 7)
    assert sorted(expected) == sorted(created)
    await assert_walks_both_ways(conversations_of(alice), 3, expected)


# --- filters -------------------------------------------------------------------------------


async def test_task_status_filter_pages_within_the_filtered_list(alice: GraphQLClient) -> None:
    created = await create_tasks(alice, 7)
    completed = [created[1], created[3], created[4], created[6]]
    for task_id in completed:
        await alice.data(COMPLETE_TASK, {"id": task_id})
    pending = [task_id for task_id in created if task_id not in completed]

    await assert_walks_both_ways(tasks_of(alice, "COMPLETED"), 3, list(reversed(completed)))
    await assert_walks_both_ways(tasks_of(alice, "PENDING"), 2, list(reversed(pending)))
    await assert_walks_both_ways(tasks_of(alice), 3, list(reversed(created)))


async def test_archived_conversations_page_separately_from_active_ones(
    alice: GraphQLClient,
) -> None:
    created = await create_conversations(alice, 7)
    archived_in_order = [created[5], created[0], created[2]]
    for conversation_id in archived_in_order:
        await alice.data(ARCHIVE_CONVERSATION, {"id": conversation_id})
    active = [c for c in created if c not in archived_in_order]

    # archiving updates a conversation, so the last archived comes first
    await assert_walks_both_ways(
        conversations_of(alice, "ARCHIVED"), 2, list(reversed(archived_in_order))
    )
    await assert_walks_both_ways(conversations_of(alice), 3, list(reversed(active)))
    await assert_walks_both_ways(conversations_of(alice, "ACTIVE"), 3, list(reversed(active)))
