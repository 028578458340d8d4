"""Compiled operations answer exactly as normal execution does: the same bytes, status
and content type, on both databases. Two servers on one database — one with
`COMPILED_OPERATIONS` (the default), one without — get the same requests: hand-written
operations (every field, argument and selection form the planner covers, asserted to be
compiled) and operations generated from the schema (hypothesis-graphql)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema

from core.metrics import COMPILED_OPERATIONS
from schema.compiled.operations import PLANS_PER_DOCUMENT
from schema.schema import print_sdl
from tests.conftest import LiveServer, ServerFactory, token_for

CONVERSATION_FIELDS = "id __typename title status createdAt updatedAt messageCount"
MESSAGE_FIELDS = "id role content clientMessageId createdAt status __typename"
TASK_FIELDS = "id title description status createdAt updatedAt completedAt"


def _compiled_count() -> float:
    return float(COMPILED_OPERATIONS.labels("compiled")._value.get())


class Pair:
    """The same request to the compiled and the generic server."""

    def __init__(self, compiled: LiveServer, generic: LiveServer, token: str) -> None:
        self.compiled = httpx.AsyncClient(base_url=compiled.url, timeout=30)
        self.generic = httpx.AsyncClient(base_url=generic.url, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}"}

    async def both(
        self, query: str, variables: dict[str, Any] | None = None, **extra: Any
    ) -> tuple[httpx.Response, httpx.Response]:
        body: dict[str, Any] = {"query": query, **extra}
        if variables is not None:
            body["variables"] = variables
        answers = []
        for client in (self.compiled, self.generic):
            answers.append(await client.post("/graphql", json=body, headers=self.headers))
        return answers[0], answers[1]

    async def same(
        self, query: str, variables: dict[str, Any] | None = None, **extra: Any
    ) -> httpx.Response:
        compiled, generic = await self.both(query, variables, **extra)
        assert compiled.status_code == generic.status_code, query
        assert compiled.headers["content-type"] == generic.headers["content-type"], query
        assert compiled.content == generic.content, (query, variables)
        return compiled

    async def compiled_same(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        """Answered by a plan, and byte for byte as normal execution answers it."""
        before = _compiled_count()
        response = await self.same(query, variables)
        assert _compiled_count() == before + 1, f"not compiled: {query}"
        payload = response.json()
        assert "errors" not in payload, payload
        return payload["data"]

    async def close(self) -> None:
        await self.compiled.aclose()
        await self.generic.aclose()


async def _mutate(pair: Pair, query: str, variables: dict[str, Any]) -> Any:
    response = await pair.generic.post(
        "/graphql", json={"query": query, "variables": variables}, headers=pair.headers
    )
    payload = response.json()
    assert "errors" not in payload, payload
    return payload["data"]


async def _seed(pair: Pair) -> dict[str, list[str]]:
    """Conversations (with messages, archived and deleted ones among them), tasks."""
    conversations: list[str] = []
    for index in range(7):
        sent = await _mutate(
            pair,
            "mutation($t: String!, $k: String) { sendMessage(input: {content: $t,"
            " clientMessageId: $k}) { conversation { id } } }",
            {"t": f"add a task: errand {index} 100%_off", "k": f"key-{index}"},
        )
        conversations.append(sent["sendMessage"]["conversation"]["id"])
    for index in range(3):
        await _mutate(
            pair,
            "mutation($c: ID!, $t: String!) { sendMessage(input: {conversationId: $c,"
            " content: $t}) { message { id } } }",
            {"c": conversations[0], "t": f"list my tasks {index}"},
        )
    empty = await _mutate(
        pair, 'mutation { createConversation(input: {title: "empty"}) { conversation { id } } }', {}
    )
    conversations.append(empty["createConversation"]["conversation"]["id"])
    archive = "mutation($c: ID!) { archiveConversation(input: {id: $c}) { conversation { id } } }"
    await _mutate(pair, archive, {"c": conversations[1]})
    delete = "mutation($c: ID!) { deleteConversation(input: {id: $c}) { deletedId } }"
    await _mutate(pair, delete, {"c": conversations[2]})
    tasks = []
    for index in range(5):
        created = await _mutate(
            pair,
            "mutation($t: String!, $d: String) { createTask(input: {title: $t, description: $d})"
            " { task { id } } }",
            {"t": f"task {index}", "d": None if index % 2 else f"about {index}"},
        )
        tasks.append(created["createTask"]["task"]["id"])
    complete = "mutation($t: ID!) { completeTask(input: {id: $t}) { task { id } } }"
    await _mutate(pair, complete, {"t": tasks[1]})
    return {"conversations": conversations, "tasks": tasks}


@pytest.fixture
async def pair(server: LiveServer, server_factory: ServerFactory) -> Any:
    generic = await server_factory(compiled_operations=False)
    pair = Pair(server, generic, token_for(f"compiled-{uuid.uuid4()}"))
    yield pair
    await pair.close()


async def test_hot_operations_are_compiled_and_answer_as_normal_execution(pair: Pair) -> None:
    seeded = await _seed(pair)
    # the bench's S1, S2 and S4
    page = await pair.compiled_same(
        "{ conversations(first: 20) { totalCount edges { cursor node { id title updatedAt"
        " messageCount lastMessage { content createdAt } } } pageInfo { hasNextPage endCursor } } }"
    )
    assert page["conversations"]["totalCount"] == 6
    await pair.compiled_same("{ me { id } }")
    await pair.compiled_same("{ me { __typename id createdAt } }")
    history = (
        "query($id: ID!, $before: String, $n: Int) { conversation(id: $id) {"
        " messages(last: $n, before: $before) { edges { cursor node { id role content createdAt } }"
        " pageInfo { hasPreviousPage hasNextPage startCursor endCursor } } } }"
    )
    first = seeded["conversations"][0]
    newest = await pair.compiled_same(history, {"id": first, "n": 3})
    start = newest["conversation"]["messages"]["pageInfo"]["startCursor"]
    older = await pair.compiled_same(history, {"id": first, "n": 3, "before": start})
    assert older["conversation"]["messages"]["edges"]
    # every page of every list, forwards and backwards, with and without cursors
    lists = {
        "conversations": f"{CONVERSATION_FIELDS} lastMessage {{ {MESSAGE_FIELDS} }}",
        "tasks": TASK_FIELDS,
    }
    for name, fields in lists.items():
        paged = (
            f"query($f: Int, $a: String, $l: Int, $b: String) {{ {name}(first: $f, after: $a,"
            f" last: $l, before: $b) {{ __typename totalCount pageInfo {{ __typename"
            f" hasNextPage hasPreviousPage startCursor endCursor }} edges {{ __typename cursor"
            f" node {{ {fields} }} }} }} }}"
        )
        cursor: str | None = None
        while True:
            data = await pair.compiled_same(paged, {"f": 2, "a": cursor})
            info = data[name]["pageInfo"]
            if not info["hasNextPage"]:
                break
            cursor = info["endCursor"]
        cursor = None
        while True:
            data = await pair.compiled_same(paged, {"l": 2, "b": cursor})
            info = data[name]["pageInfo"]
            if not info["hasPreviousPage"]:
                break
            cursor = info["startCursor"]
        middle = (await pair.compiled_same(paged, {"f": 3}))[name]["edges"][1]["cursor"]
        await pair.compiled_same(paged, {"f": 1, "a": middle})
        await pair.compiled_same(paged, {"l": 1, "b": middle})
        await pair.compiled_same(paged, {"f": 10, "a": middle, "b": cursor})
    # filters, aliases, fragments, directives, repeated fields
    await pair.compiled_same(
        "{ archived: conversations(status: ARCHIVED) { totalCount edges { node { id title } } } }"
    )
    await pair.compiled_same(
        "query($s: String) { conversations(search: $s) { totalCount edges { node { title } } } }",
        {"s": "100%_"},
    )
    await pair.compiled_same(
        '{ conversations(search: "errand 3") { totalCount edges { node { title } } } }'
    )
    await pair.compiled_same(
        "{ done: tasks(status: COMPLETED) { totalCount edges { node { title } } }"
        " open: tasks(status: PENDING, first: 1) { edges { node { title } } } }"
    )
    await pair.compiled_same(
        "query Page($full: Boolean!) { ...Root }"
        " fragment Root on Query { conversations(first: 3) { edges { node { ...Conv"
        " ... on Node { id } lastMessage @include(if: $full) { ...Msg } } } } me { ... on User"
        " { id } } }"
        " fragment Conv on Conversation { title id title messageCount @skip(if: $full)"
        " a: updatedAt }"
        " fragment Msg on Message { content role }",
        {"full": True},
    )
    await pair.compiled_same(
        "query Page($full: Boolean!) { conversations(first: 3) { edges { node { id"
        " lastMessage @include(if: $full) { content } messageCount @skip(if: $full) } } } }",
        {"full": False},
    )
    await pair.compiled_same(
        "{ conversations { edges { node { id lastMessage { id }"
        " last: lastMessage { content } } } } }"
    )
    # conversation(id): missing, deleted, archived, empty, with and without messages
    one = (
        f"query($id: ID!) {{ conversation(id: $id) {{ {CONVERSATION_FIELDS}"
        " lastMessage { id } } }"
    )
    for conversation_id in seeded["conversations"]:
        await pair.compiled_same(one, {"id": conversation_id})
        await pair.compiled_same(
            "query($id: ID!) { __typename conversation(id: $id) { title messages { totalCount"
            f" edges {{ node {{ {MESSAGE_FIELDS} }} }} }} }} }}",
            {"id": conversation_id},
        )
    other = token_for(f"other-{uuid.uuid4()}")
    pair.headers = {"Authorization": f"Bearer {other}"}
    found = await pair.compiled_same(one, {"id": seeded["conversations"][0]})
    assert found == {"conversation": None}, "another user's conversation is not theirs"
    await pair.compiled_same(
        "{ conversations { totalCount edges { cursor } } tasks { totalCount } }"
    )


async def test_what_would_answer_an_error_runs_through_normal_execution(pair: Pair) -> None:
    seeded = await _seed(pair)
    conversation_id = seeded["conversations"][0]
    before = _compiled_count()
    cases: list[tuple[str, dict[str, Any] | None]] = [
        ("{ conversations(first: 0) { totalCount } }", None),
        ("{ conversations(first: 101) { totalCount } }", None),
        ("{ conversations(first: 1, last: 1) { totalCount } }", None),
        ('{ conversations(after: "bogus") { totalCount } }', None),
        ('{ tasks(before: "bogus") { totalCount } }', None),
        ('{ conversation(id: "bogus") { id } }', None),
        ("query($id: ID!) { conversation(id: $id) { id } }", {"id": seeded["tasks"][0]}),
        ("query($id: ID!) { conversation(id: $id) { id } }", {}),
        ("query($n: Int) { conversations(first: $n) { totalCount } }", {"n": "many"}),
        ("{ conversations { totalCount nope } }", None),
        ("{ conversations { totalCount }", None),
        (
            "query($n: Int) { conversations(first: $n) { edges { node { messages(first: $n) {"
            " edges { node { id } } } } } } }",
            {"n": 100},
        ),
    ]
    # a cursor of one conversation's messages is not a cursor of another's
    history = (
        "query($id: ID!, $b: String) { conversation(id: $id) {"
        " messages(last: 1, before: $b) { pageInfo { startCursor } } } }"
    )
    data = (await pair.same(history, {"id": conversation_id})).json()["data"]
    foreign = data["conversation"]["messages"]["pageInfo"]["startCursor"]
    cases.append((history, {"id": seeded["conversations"][3], "b": foreign}))
    for query, variables in cases:
        response = await pair.same(query, variables)
        assert response.json().get("errors"), query
    assert _compiled_count() == before + 1  # the one valid history read above
    # two operations and no operationName: whatever normal execution makes of it
    await pair.same("query A { me { id } } query B { me { id } }")
    assert _compiled_count() == before + 1
    # no token, a bad token, batches and non-JSON bodies reach normal execution too
    for headers in ({}, {"Authorization": "Bearer nope"}):
        answers = [
            await client.post("/graphql", json={"query": "{ me { id } }"}, headers=headers)
            for client in (pair.compiled, pair.generic)
        ]
        assert answers[0].status_code == answers[1].status_code
        assert answers[0].content == answers[1].content
    batch = [{"query": "{ me { id } }"}, {"query": "{ tasks { totalCount } }"}]
    answers = [
        await client.post("/graphql", json=batch, headers=pair.headers)
        for client in (pair.compiled, pair.generic)
    ]
    assert answers[0].content == answers[1].content
    assert _compiled_count() == before + 1


async def test_the_graphql_response_media_type_and_persisted_queries(pair: Pair) -> None:
    await _seed(pair)
    query = "{ tasks(first: 2) { edges { node { id title } } } }"
    for accept in ("application/graphql-response+json", "application/json", "*/*"):
        answers = [
            await client.post(
                "/graphql", json={"query": query}, headers={**pair.headers, "Accept": accept}
            )
            for client in (pair.compiled, pair.generic)
        ]
        assert answers[0].headers["content-type"] == answers[1].headers["content-type"]
        assert answers[0].content == answers[1].content
    digest = __import__("hashlib").sha256(query.encode()).hexdigest()
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    before = _compiled_count()
    await pair.same(query, extensions=persisted)  # registers the document on both
    compiled = await pair.compiled.post(
        "/graphql", json={"extensions": persisted}, headers=pair.headers
    )
    generic = await pair.generic.post(
        "/graphql", json={"extensions": persisted}, headers=pair.headers
    )
    assert compiled.content == generic.content
    assert _compiled_count() == before + 2


def _subset_sdl() -> str:
    """The fields the planner covers, in a schema of their own: what hypothesis-graphql
    generates from it is valid against the whole schema (checked for every document)."""
    full = graphql.build_schema(print_sdl())
    enums = "\n".join(
        graphql.print_type(full.get_type(name))  # type: ignore[arg-type]
        for name in ("ConversationStatus", "MessageRole", "MessageStatus", "TaskStatus")
    )
    return f"""
    scalar DateTime
    {enums}
    interface Node {{ id: ID! }}
    type PageInfo {{ hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String
      endCursor: String }}
    type User implements Node {{ id: ID! createdAt: DateTime! }}
    type Message implements Node {{ id: ID! role: MessageRole! content: String!
      clientMessageId: String createdAt: DateTime! status: MessageStatus! }}
    type MessageEdge {{ cursor: String! node: Message! }}
    type MessageConnection {{ edges: [MessageEdge!]! pageInfo: PageInfo! totalCount: Int! }}
    type Conversation implements Node {{ id: ID! title: String! status: ConversationStatus!
      createdAt: DateTime! updatedAt: DateTime! messageCount: Int! lastMessage: Message
      messages: MessageConnection! }}
    type ConversationEdge {{ cursor: String! node: Conversation! }}
    type ConversationConnection {{ edges: [ConversationEdge!]! pageInfo: PageInfo!
      totalCount: Int! }}
    type Task implements Node {{ id: ID! title: String! description: String
      status: TaskStatus! createdAt: DateTime! updatedAt: DateTime! completedAt: DateTime }}
    type TaskEdge {{ cursor: String! node: Task! }}
    type TaskConnection {{ edges: [TaskEdge!]! pageInfo: PageInfo! totalCount: Int! }}
    type Query {{ me: User!
      conversations(status: ConversationStatus, search: String): ConversationConnection!
      conversation(id: ID!): Conversation
      tasks(status: TaskStatus): TaskConnection! }}
    """


async def test_generated_operations_answer_as_normal_execution(pair: Pair) -> None:
    seeded = await _seed(pair)
    full = graphql.build_schema(print_sdl())
    ids = [*seeded["conversations"], *seeded["tasks"], "bogus"]
    strategy = from_schema(
        _subset_sdl(),
        custom_scalars={"ID": st.sampled_from(ids).map(lambda v: graphql.StringValueNode(value=v))},
    )
    loop = asyncio.get_running_loop()
    compiled_before = _compiled_count()
    checked: list[str] = []

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(document=strategy)
    def check(document: str) -> None:
        assert not graphql.validate(full, graphql.parse(document)), document
        asyncio.run_coroutine_threadsafe(pair.same(document), loop).result(timeout=60)
        checked.append(document)

    await asyncio.to_thread(check)
    assert len(checked) >= 30
    # most generated documents are covered: the comparison is of the compiled path
    assert _compiled_count() - compiled_before >= len(checked) // 2


async def test_directive_combinations_cannot_grow_plans_without_end(pair: Pair) -> None:
    """A plan per combination of `@include` values, up to a bound: the combinations past
    it are answered by normal execution, the same bytes."""
    flags = [f"f{index}" for index in range(6)]
    query = (
        "query("
        + ", ".join(f"${flag}: Boolean!" for flag in flags)
        + ") { me { id"
        + "".join(f" {flag}: createdAt @include(if: ${flag})" for flag in flags)
        + " } }"
    )
    before = _compiled_count()
    combinations = 20
    for number in range(combinations):
        variables = {flag: bool(number >> index & 1) for index, flag in enumerate(flags)}
        await pair.same(query, variables)
    compiled = _compiled_count() - before
    assert compiled == PLANS_PER_DOCUMENT


async def test_a_repeated_header_is_for_normal_execution_to_judge(pair: Pair) -> None:
    other = token_for(f"other-{uuid.uuid4()}")
    before = _compiled_count()
    answers = []
    for client in (pair.compiled, pair.generic):
        response = await client.post(
            "/graphql",
            content=b'{"query": "{ me { id } }"}',
            headers=[
                ("content-type", "application/json"),
                ("authorization", pair.headers["Authorization"]),
                ("authorization", f"Bearer {other}"),
            ],
        )
        answers.append(response)
    assert answers[0].content == answers[1].content
    assert _compiled_count() == before


def _operations() -> Any:
    from core.config import Settings
    from schema.schema import build_schema, compiled_operations

    settings = Settings(_env_file=None, environment="test")  # type: ignore[call-arg]
    return compiled_operations(build_schema(settings)._schema, settings)


def test_a_document_over_the_limits_is_refused_before_it_is_validated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Normal execution refuses an operation over a limit before graphql-core validates
    it (some rules are quadratic in a field selected hundreds of times): the planner
    must not validate it first either."""
    import schema.compiled.operations as operations_module

    validated: list[object] = []
    real_validate = graphql.validate

    def counting(*args: Any) -> Any:
        validated.append(args)
        return real_validate(*args)

    monkeypatch.setattr(operations_module, "validate", counting)
    operations = _operations()
    repeated = "{ conversations { edges { node { " + "lastMessage { id } " * 390 + "} } } }"
    sized = "query($n: Int) { tasks(first: $n) { " + "pageInfo { hasNextPage } " * 390 + "} }"
    assert operations.prepare(repeated, None, None) is None
    assert operations.prepare(sized, None, {"n": 100}) is None
    assert validated == []
    assert operations.prepare("{ me { id } }", None, None) is not None
    assert len(validated) == 1


def test_large_documents_and_names_are_not_kept() -> None:
    """Normal execution keeps no document past 16 KiB (a client could fill memory with
    one-off padded ones); the planner keeps none either, nor a long operation name."""
    operations = _operations()
    padding = "x" * 20_000
    for _ in range(10):
        assert (
            operations.prepare(f"{{ me {{ id }} }} # {uuid.uuid4()} {padding}", None, None) is None
        )
        assert operations.prepare("query A { me { id } }", f"{uuid.uuid4()}{padding}", None) is None
    assert len(operations._documents) == 0


async def test_the_statements_kept_are_bounded(pair: Pair) -> None:
    """Clients choose the shape of a page's statement (which columns, which direction):
    at most `STATEMENTS_CACHED` are kept, however many shapes they ask for."""
    from itertools import combinations

    from db import whole_pages

    lists = {
        "conversations": ["title", "status", "createdAt", "messageCount", "lastMessage { id }"],
        "tasks": ["title", "description", "status", "createdAt", "updatedAt", "completedAt"],
    }
    # a filter that changes the statement's form, per list
    filtered = {"conversations": 'first: 1, search: "x"', "tasks": "first: 1, status: PENDING"}
    shapes = 0
    for name, fields in lists.items():
        for size in range(1, len(fields) + 1):
            for chosen in combinations(fields, size):
                for page in ("first: 1", "last: 1", filtered[name]):
                    selection = " ".join(chosen)
                    await pair.compiled_same(
                        f"{{ {name}({page}) {{ edges {{ node {{ id {selection} }} }} }} }}"
                    )
                    shapes += 1
    assert shapes > whole_pages.STATEMENTS_CACHED
    assert len(whole_pages.STATEMENTS) <= whole_pages.STATEMENTS_CACHED


_VARYING_HEADERS = frozenset({"date", "server", "x-request-id"})


def _headers_of(response: httpx.Response) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in response.headers.multi_items() if k not in _VARYING_HEADERS)


@pytest.mark.parametrize("cors_origins", [None, "https://app.example"])
async def test_a_compiled_answer_carries_the_headers_normal_execution_sends(
    server_factory: ServerFactory, cors_origins: str | None
) -> None:
    """The compiled path answers in front of the middleware stack, and must send what
    the stack sends: the request id, nosniff, CORS for an allowed origin (none for
    another), the media type negotiated."""
    compiled = await server_factory(cors_origins=cors_origins)
    generic = await server_factory(cors_origins=cors_origins, compiled_operations=False)
    pair = Pair(compiled, generic, token_for(f"headers-{uuid.uuid4()}"))
    try:
        cases: list[dict[str, str]] = [
            {},
            {"origin": "https://app.example"},
            {"origin": "https://elsewhere.example"},
            {"accept": "application/graphql-response+json"},
            {"x-request-id": "client-chosen.id_1"},
        ]
        for extra in cases:
            answers = []
            for client in (pair.compiled, pair.generic):
                before = _compiled_count()
                response = await client.post(
                    "/graphql",
                    json={"query": "{ me { id } conversations(first: 2) { totalCount } }"},
                    headers={**pair.headers, **extra},
                )
                answers.append((response, _compiled_count() - before))
            (compiled_answer, compiled_count), (generic_answer, _) = answers
            assert compiled_count == 1, extra
            assert compiled_answer.status_code == generic_answer.status_code == 200
            assert compiled_answer.content == generic_answer.content
            assert _headers_of(compiled_answer) == _headers_of(generic_answer), extra
            request_id = compiled_answer.headers["x-request-id"]
            if "x-request-id" in extra:
                assert request_id == extra["x-request-id"]
            else:
                assert len(request_id) == 32
                assert request_id != generic_answer.headers["x-request-id"]
    finally:
        await pair.close()


async def test_a_compiled_read_past_the_deadline_is_answered_503_as_the_stack_answers(
    server_factory: ServerFactory,
) -> None:
    """The front keeps the request deadline itself: the same 503, headers and all."""
    compiled = await server_factory(request_timeout_seconds=0.0001)
    generic = await server_factory(request_timeout_seconds=0.0001, compiled_operations=False)
    pair = Pair(compiled, generic, token_for(f"deadline-{uuid.uuid4()}"))
    try:
        pair.headers["Origin"] = "https://app.example"
        compiled_answer, generic_answer = await pair.both(
            "{ conversations(first: 2) { totalCount } }"
        )
        assert compiled_answer.status_code == generic_answer.status_code == 503
        assert compiled_answer.content == generic_answer.content
        assert _headers_of(compiled_answer) == _headers_of(generic_answer)
        # a browser on another origin can read it
        assert generic_answer.headers["access-control-allow-origin"] == "*"
        assert generic_answer.headers["x-content-type-options"] == "nosniff"
        assert compiled_answer.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    finally:
        await pair.close()
