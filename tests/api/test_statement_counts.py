"""Benchmarks in the manner of Saleor's: a realistic query, and the number of SQL
statements it costs, pinned. A list costs the same whatever its page size: related
data comes from DataLoaders, one statement per relation, never one per row.

The lists a compiled plan answers are pinned on both paths: one statement per page
compiled (`COMPILED_OPERATIONS`, the default), one per relation through normal execution.

Each test starts a server of its own, so nothing but the measured request touches its
engine while statements are counted. Run with `-s` to see the measured counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.conftest import GraphQLClient, LiveServer, ServerFactory, token_for

#: transaction control is not a query; SQLite's connection setup is not either
NOT_QUERIES = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA")


@contextmanager
def recording_statements(live: LiveServer) -> Iterator[list[str]]:
    app = live.server.config.app
    assert isinstance(app, FastAPI)
    engine = app.state.engine.sync_engine
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(NOT_QUERIES):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def measure(
    live: LiveServer, client: GraphQLClient, query: str, variables: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """(statements the request ran, its data)."""
    with recording_statements(live) as statements:
        data = await client.data(query, variables)
    return len(statements), data


#: both paths of the lists a plan answers
PATHS = pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "generic"])


def user_lookups(statements: list[str]) -> int:
    return sum("FROM users" in statement for statement in statements)


async def fresh_client(
    server_factory: ServerFactory, *, compiled: bool = True
) -> tuple[LiveServer, GraphQLClient]:
    live = await server_factory(compiled_operations=compiled)
    client = live.client(token_for(f"bench-{uuid.uuid4()}"))
    await client.data("{ me { id } }")  # the user row exists before anything is measured
    return live, client


def report(backend: str, what: str, counts: dict[int, int]) -> None:
    sizes = ", ".join(f"{size} -> {count}" for size, count in counts.items())
    print(f"\n[{backend}] {what}: page size -> statements: {sizes}")


SEND = """
mutation($conversationId: ID, $content: String!) {
  sendMessage(input: {conversationId: $conversationId, content: $content}) {
    conversation { id }
  }
}"""
CREATE_CONVERSATION = """
mutation($title: String!) { createConversation(input: {title: $title}) { conversation { id } } }
"""
CREATE_TASK = "mutation($title: String!) { createTask(input: {title: $title}) { task { id } } }"


async def create_conversations(client: GraphQLClient, count: int) -> list[str]:
    """`count` conversations, the newest three with a question and a reply each."""
    ids = []
    for number in range(count):
        data = await client.data(CREATE_CONVERSATION, {"title": f"conversation {number}"})
        ids.append(data["createConversation"]["conversation"]["id"])
    for conversation_id in ids[-3:]:
        await client.data(SEND, {"conversationId": conversation_id, "content": "add task: x"})
    return ids


CONVERSATION_PAGE = """
query($first: Int!, $after: String) {
  conversations(first: $first, after: $after) {
    totalCount
    edges { node { id title messageCount lastMessage { content role } } }
  }
}"""


@PATHS
async def test_conversation_page_cost_does_not_grow_with_page_size(
    server_factory: ServerFactory, backend: str, compiled: bool
) -> None:
    live, client = await fresh_client(server_factory, compiled=compiled)
    await create_conversations(client, 20)

    counts = {}
    for size in (5, 20):
        counts[size], data = await measure(live, client, CONVERSATION_PAGE, {"first": size})
        nodes = [edge["node"] for edge in data["conversations"]["edges"]]
        assert len(nodes) == size
        assert data["conversations"]["totalCount"] == 20
        assert [node["messageCount"] for node in nodes[:4]] == [2, 2, 2, 0]
        assert nodes[0]["lastMessage"]["role"] == "ASSISTANT"
        assert nodes[3]["lastMessage"] is None
    report(backend, "conversations { totalCount messageCount lastMessage }", counts)

    # compiled: one statement; generic: page, count, message counts, last messages (the
    # user is known: no lookup)
    assert counts[5] == counts[20]
    assert counts[20] == (1 if compiled else 4)


@PATHS
async def test_conversation_page_after_a_cursor_cost_does_not_grow_with_page_size(
    server_factory: ServerFactory, backend: str, compiled: bool
) -> None:
    live, client = await fresh_client(server_factory, compiled=compiled)
    await create_conversations(client, 20)
    first_page = await client.data("{ conversations(first: 2) { pageInfo { endCursor } } }")
    after = first_page["conversations"]["pageInfo"]["endCursor"]

    counts = {}
    for size in (5, 18):
        variables = {"first": size, "after": after}
        counts[size], data = await measure(live, client, CONVERSATION_PAGE, variables)
        assert len(data["conversations"]["edges"]) == size
    report(backend, "conversations(after:) { ... }", counts)

    # the page after a cursor also asks whether anything lies before it (compiled: in
    # the same statement)
    assert counts[5] == counts[18]
    assert counts[18] == (1 if compiled else 5)


LAST_MESSAGE_CONVERSATIONS = """
query($first: Int!) {
  conversations(first: $first) {
    edges { node { lastMessage { content conversation { id title } } } }
  }
}"""


async def test_message_conversation_is_batched_across_a_page(
    server_factory: ServerFactory, backend: str
) -> None:
    live, client = await fresh_client(server_factory)
    ids: list[str] = []
    for number in range(8):
        data = await client.data(SEND, {"content": f"add task: chore {number}"})
        ids.append(data["sendMessage"]["conversation"]["id"])

    counts = {}
    for size in (2, 8):
        counts[size], data = await measure(
            live, client, LAST_MESSAGE_CONVERSATIONS, {"first": size}
        )
        conversations = [
            edge["node"]["lastMessage"]["conversation"] for edge in data["conversations"]["edges"]
        ]
        assert [c["id"] for c in conversations] == list(reversed(ids))[:size]
        assert conversations[0]["title"] == "add task: chore 7"
    report(backend, "conversations { lastMessage { conversation } }", counts)

    # page, last messages, their conversations
    assert counts[2] == counts[8]
    assert counts[8] == 3


TASK_PAGE = """
query($first: Int!) {
  tasks(first: $first) {
    totalCount
    edges { cursor node { id title description status createdAt completedAt } }
    pageInfo { hasNextPage endCursor }
  }
}"""


@PATHS
async def test_task_page_cost_does_not_grow_with_page_size(
    server_factory: ServerFactory, backend: str, compiled: bool
) -> None:
    live, client = await fresh_client(server_factory, compiled=compiled)
    for number in range(20):
        await client.data(CREATE_TASK, {"title": f"task {number}"})

    counts = {}
    for size in (5, 20):
        counts[size], data = await measure(live, client, TASK_PAGE, {"first": size})
        assert len(data["tasks"]["edges"]) == size
        assert data["tasks"]["totalCount"] == 20
    report(backend, "tasks { totalCount }", counts)

    # page, count (compiled: in one statement)
    assert counts[5] == counts[20]
    assert counts[20] == (1 if compiled else 2)


MESSAGE_PAGE = """
query($id: ID!, $first: Int!) {
  conversation(id: $id) {
    messages(first: $first) {
      totalCount
      edges { node { content role conversation { title } } }
    }
  }
}"""


async def test_message_page_cost_does_not_grow_with_page_size(
    server_factory: ServerFactory, backend: str
) -> None:
    live, client = await fresh_client(server_factory)
    conversation_id = None
    for number in range(5):
        data = await client.data(
            SEND, {"conversationId": conversation_id, "content": f"add task: item {number}"}
        )
        conversation_id = data["sendMessage"]["conversation"]["id"]

    counts = {}
    for size in (3, 10):
        variables = {"id": conversation_id, "first": size}
        counts[size], data = await measure(live, client, MESSAGE_PAGE, variables)
        messages = data["conversation"]["messages"]
        assert len(messages["edges"]) == size
        assert messages["totalCount"] == 10
        assert {edge["node"]["conversation"]["title"] for edge in messages["edges"]} == {
            "add task: item 0"
        }
    report(backend, "conversation { messages { conversation } }", counts)

    # conversation, page, count (the messages' conversation comes from the loader's cache)
    assert counts[3] == counts[10]
    assert counts[10] == 3


HISTORY_PAGE = """
query($id: ID!, $last: Int!, $before: String) {
  conversation(id: $id) {
    title messageCount
    messages(last: $last, before: $before) {
      totalCount
      edges { cursor node { id content role createdAt } }
      pageInfo { hasPreviousPage startCursor }
    }
  }
}"""


@PATHS
async def test_history_page_cost_does_not_grow_with_page_size(
    server_factory: ServerFactory, backend: str, compiled: bool
) -> None:
    live, client = await fresh_client(server_factory, compiled=compiled)
    conversation_id = None
    for number in range(6):
        data = await client.data(
            SEND, {"conversationId": conversation_id, "content": f"add task: item {number}"}
        )
        conversation_id = data["sendMessage"]["conversation"]["id"]
    newest = await client.data(HISTORY_PAGE, {"id": conversation_id, "last": 2})
    before = newest["conversation"]["messages"]["pageInfo"]["startCursor"]

    counts = {}
    for size in (3, 10):
        variables = {"id": conversation_id, "last": size, "before": before}
        counts[size], data = await measure(live, client, HISTORY_PAGE, variables)
        messages = data["conversation"]["messages"]
        assert len(messages["edges"]) == size
        assert messages["totalCount"] == 12
        assert messages["pageInfo"]["hasPreviousPage"] is (size == 3)
    report(backend, "conversation { messages(last:, before:) }", counts)

    # compiled: one statement; generic: the conversation, the page, whether more lie
    # after the cursor, the count
    assert counts[3] == counts[10]
    assert counts[10] == (1 if compiled else 4)


def aliased_nodes(count: int, fragment: str) -> str:
    fields = " ".join(
        f"n{index}: node(id: $id{index}) {{ id {fragment} }}" for index in range(count)
    )
    arguments = ", ".join(f"$id{index}: ID!" for index in range(count))
    return f"query({arguments}) {{ {fields} }}"


async def test_conversation_nodes_are_batched(server_factory: ServerFactory, backend: str) -> None:
    live, client = await fresh_client(server_factory)
    ids = await create_conversations(client, 8)
    fragment = "... on Conversation { title messageCount lastMessage { content } }"

    counts = {}
    for size in (2, 8):
        variables = {f"id{index}": ids[index] for index in range(size)}
        counts[size], data = await measure(live, client, aliased_nodes(size, fragment), variables)
        assert [data[f"n{index}"]["title"] for index in range(size)] == [
            f"conversation {index}" for index in range(size)
        ]
    report(backend, "n aliased node(id) on Conversation", counts)

    # conversations, message counts, last messages
    assert counts[2] == counts[8]
    assert counts[8] == 3


async def test_task_and_message_nodes_are_batched(
    server_factory: ServerFactory, backend: str
) -> None:
    live, client = await fresh_client(server_factory)
    task_ids = []
    for index in range(8):
        created = await client.data(
            "mutation($t: String!) { createTask(input: {title: $t}) { task { id } } }",
            {"t": f"task {index}"},
        )
        task_ids.append(created["createTask"]["task"]["id"])
    turn = await client.data(
        'mutation { sendMessage(input: {content: "list my tasks"}) { conversation { id } } }'
    )
    messages = await client.data(
        "query($id: ID!) { conversation(id: $id) { messages { edges { node { id } } } } }",
        {"id": turn["sendMessage"]["conversation"]["id"]},
    )
    message_ids = [edge["node"]["id"] for edge in messages["conversation"]["messages"]["edges"]]
    mixed = [task_ids[0], message_ids[0], task_ids[1], message_ids[1], *task_ids[2:8]]

    counts = {}
    for size in (2, 8):
        variables = {f"id{index}": mixed[index] for index in range(size)}
        fragment = "... on Task { title } ... on Message { content }"
        counts[size], data = await measure(live, client, aliased_nodes(size, fragment), variables)
        assert all(data[f"n{index}"] for index in range(size))
    report(backend, "n aliased node(id) on Task and Message", counts)

    # tasks, messages
    assert counts[2] == counts[8]
    assert counts[8] == 2


async def test_single_node_of_each_type_costs_a_constant(
    server_factory: ServerFactory, backend: str
) -> None:
    live, client = await fresh_client(server_factory)
    turn = (
        await client.data(
            """mutation { sendMessage(input: {content: "add a task to buy milk"}) {
                 conversation { id } message { id } } }"""
        )
    )["sendMessage"]
    tasks = await client.data("{ tasks { edges { node { id } } } }")
    task_id = tasks["tasks"]["edges"][0]["node"]["id"]
    query = """query($id: ID!) { node(id: $id) { id
        ... on Task { title }
        ... on Conversation { title messageCount }
        ... on Message { content conversation { title } } } }"""

    counts = {}
    for name, node_id in (
        ("Task", task_id),
        ("Conversation", turn["conversation"]["id"]),
        ("Message", turn["message"]["id"]),
    ):
        count, data = await measure(live, client, query, {"id": node_id})
        assert data["node"]["id"] == node_id
        counts[name] = count
    print(f"\n[{backend}] node(id) statements by type: {counts}")

    # the user is known to the instance already (KnownUsers): no user lookup
    assert counts == {"Task": 1, "Conversation": 2, "Message": 2}


ROOT_FIELDS = """
{ me { id } tasks { totalCount } conversations { totalCount }
  archived: conversations(status: ARCHIVED) { totalCount } }
"""


@PATHS
async def test_root_fields_of_a_known_user_cost_no_user_lookup(
    server_factory: ServerFactory, backend: str, compiled: bool
) -> None:
    live, client = await fresh_client(server_factory, compiled=compiled)
    with recording_statements(live) as statements:
        data = await client.data(ROOT_FIELDS)
    assert data["tasks"]["totalCount"] == 0
    print(f"\n[{backend}] four root fields: {len(statements)} statements")
    assert user_lookups(statements) == 0
    # a page and a count for each of the three lists (compiled: one statement each)
    assert len(statements) == (3 if compiled else 6)


async def test_brand_new_user_is_created_once_by_sibling_fields(
    server_factory: ServerFactory,
) -> None:
    live = await server_factory()
    client = live.client(token_for(f"bench-{uuid.uuid4()}"))
    with recording_statements(live) as statements:
        data = await client.data(ROOT_FIELDS)
    assert data["conversations"]["totalCount"] == 0
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO USERS")]
    assert len(inserts) == 1
    # looked up, inserted, read back: once for all four fields
    assert user_lookups(statements) == 2
    assert (await client.data("{ me { id } }"))["me"]["id"] == data["me"]["id"]


TASK_ORIGIN_PAGE = """
query($first: Int!) {
  tasks(first: $first) {
    edges { node { id title origin { message { id } toolCall { id name } } } }
  }
}"""


async def test_task_origins_cost_one_statement_for_a_page(
    server_factory: ServerFactory, backend: str
) -> None:
    live, client = await fresh_client(server_factory)
    conversation_id = None
    for number in range(10):  # half by the assistant, half by mutations, interleaved
        data = await client.data(
            SEND, {"conversationId": conversation_id, "content": f"add task: chore {number}"}
        )
        conversation_id = data["sendMessage"]["conversation"]["id"]
        await client.data(CREATE_TASK, {"title": f"task {number}"})

    counts = {}
    for size in (5, 20):
        counts[size], data = await measure(live, client, TASK_ORIGIN_PAGE, {"first": size})
        nodes = [edge["node"] for edge in data["tasks"]["edges"]]
        assert len(nodes) == size
        made_by_chat = [node for node in nodes if node["title"].startswith("chore")]
        assert all(node["origin"]["message"]["id"] for node in made_by_chat)
        assert all(node["origin"]["toolCall"]["name"] == "add_task" for node in made_by_chat)
        assert all(node["origin"] is None for node in nodes if node not in made_by_chat)
        assert len(made_by_chat) == size // 2
    report(backend, "tasks { origin { message toolCall } }", counts)

    # page, origins (the reply rows come with them)
    assert counts[5] == counts[20]
    assert counts[20] == 2


REPLY_RECORDS_PAGE = """
query($id: ID!, $first: Int!) {
  conversation(id: $id) {
    messages(first: $first) {
      edges { node {
        role
        replyTo { id }
        usage { totalTokens estimated }
        feedback { rating }
        affectedTasks { id title }
      } }
    }
  }
}"""
RATE = """
mutation($id: ID!) { rateReply(input: {messageId: $id, rating: UP}) { message { id } } }
"""


async def test_reply_records_cost_one_statement_each_for_a_page(
    server_factory: ServerFactory, backend: str
) -> None:
    live, client = await fresh_client(server_factory)
    conversation_id = None
    for number in range(5):
        data = await client.data(
            SEND, {"conversationId": conversation_id, "content": f"add task: item {number}"}
        )
        conversation_id = data["sendMessage"]["conversation"]["id"]
    page = await client.data(
        "query($id: ID!) { conversation(id: $id) { messages(first: 10) { edges { node "
        "{ id role } } } } }",
        {"id": conversation_id},
    )
    replies = [
        edge["node"]["id"]
        for edge in page["conversation"]["messages"]["edges"]
        if edge["node"]["role"] == "ASSISTANT"
    ]
    for reply_id in replies[::2]:
        await client.data(RATE, {"id": reply_id})

    counts = {}
    for size in (3, 10):
        variables = {"id": conversation_id, "first": size}
        counts[size], data = await measure(live, client, REPLY_RECORDS_PAGE, variables)
        nodes = [edge["node"] for edge in data["conversation"]["messages"]["edges"]]
        assert len(nodes) == size
        for node in nodes:
            if node["role"] == "ASSISTANT":
                assert node["replyTo"]["id"]
                assert node["usage"]["estimated"] is True
                [task] = node["affectedTasks"]  # the one task its add_task created
                assert task["title"].startswith("item ")
            else:
                assert (node["replyTo"], node["usage"], node["feedback"]) == (None, None, None)
        assert sum(node["feedback"] is not None for node in nodes) == (size // 2 + 1) // 2
    report(backend, "messages { replyTo usage feedback affectedTasks }", counts)

    # conversation, page, questions (replyTo), runs (usage), feedback, affected tasks
    assert counts[3] == counts[10]
    assert counts[10] == 6


@dataclass
class TurnCost:
    """Everything a request cost on every engine of the process (the app's, the turn
    locks', the reply journal's): statements and transactions."""

    statements: int = 0
    transactions: int = 0


@contextmanager
def recording_every_engine() -> Iterator[TurnCost]:
    cost = TurnCost()

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(NOT_QUERIES):
            cost.statements += 1

    def on_begin(_conn: Any) -> None:
        cost.transactions += 1

    event.listen(Engine, "before_cursor_execute", on_execute)
    event.listen(Engine, "begin", on_begin)
    try:
        yield cost
    finally:
        event.remove(Engine, "before_cursor_execute", on_execute)
        event.remove(Engine, "begin", on_begin)


#: an offline "list my tasks" turn in a conversation with history, per backend, as
#: SQLAlchemy sees it (transaction control and the turn lock, carried in the BEGIN and
#: COMMIT of the turn's own connection on PostgreSQL, are not statements): unit 1 (the
#: question and its reply STREAMING; the run under the rate limit and the history: one
#: statement each on PostgreSQL, db/messages.store_exchange and db/turn_start.py), unit 2
#: (the tool's read; the reply's end with the stream's last entries and the run's end:
#: one statement on PostgreSQL, db/reply_end.py). SQLite runs each part on its own.
TURN_BUDGET = {
    "postgres": TurnCost(statements=4, transactions=2),
    "sqlite": TurnCost(statements=10, transactions=2),
}


async def test_an_offline_turn_costs_a_fixed_number_of_statements_and_transactions(
    server_factory: ServerFactory, backend: str
) -> None:
    live, client = await fresh_client(server_factory)
    for number in range(3):
        await client.data(CREATE_TASK, {"title": f"chore {number}"})
    conversation_id = (await create_conversations(client, 1))[0]
    costs: list[TurnCost] = []
    for _ in range(3):  # the history grows: the cost does not
        with recording_every_engine() as cost:
            data = await client.data(
                SEND_AND_READ, {"conversationId": conversation_id, "content": "list my tasks"}
            )
        costs.append(cost)
        message = data["sendMessage"]["message"]
        assert message["role"] == "ASSISTANT"
        assert "chore 2" in message["content"]
        assert [call["name"] for call in message["toolCalls"]] == ["list_tasks"]
    print(f"\n[{backend}] offline turn: {costs}")
    budget = TURN_BUDGET[backend]
    for cost in costs:
        assert cost.statements <= budget.statements, costs
        assert cost.transactions <= budget.transactions, costs
    del live


SEND_AND_READ = """
mutation($conversationId: ID, $content: String!) {
  sendMessage(input: {conversationId: $conversationId, content: $content}) {
    conversation { id title }
    message { id role content toolCalls { name } }
  }
}"""
