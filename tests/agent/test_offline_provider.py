"""The offline provider: phrasing -> tool call, tool results -> answer, streaming."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.providers.base import ChatMessage, ModelProvider, ModelReply
from agent.providers.offline import HINT, OfflineProvider, parse_intent

Intent = tuple[str, dict[str, str]]

ADD_MILK: Intent = ("add_task", {"title": "buy milk"})
LIST_ALL: Intent = ("list_tasks", {})
LIST_PENDING: Intent = ("list_tasks", {"status": "PENDING"})
LIST_COMPLETED: Intent = ("list_tasks", {"status": "COMPLETED"})
COMPLETE_MILK: Intent = ("complete_task", {"title": "buy milk"})
RENAME_MILK: Intent = ("update_task", {"title": "buy milk", "new_title": "buy oat milk"})
DELETE_MILK: Intent = ("delete_task", {"title": "buy milk"})

PHRASINGS: list[tuple[str, Intent]] = [
    # add_task
    ("add a task to buy milk", ADD_MILK),
    ("add task: buy milk", ADD_MILK),
    ("add buy milk to my tasks", ADD_MILK),
    ("add buy milk to my list", ADD_MILK),
    ("add buy milk to my to-do list", ADD_MILK),
    ("add a todo: buy milk", ADD_MILK),
    ("add a to-do: buy milk", ADD_MILK),
    ("create a task called buy milk", ADD_MILK),
    ("new task: buy milk", ADD_MILK),
    ("remind me to call mom", ("add_task", {"title": "call mom"})),
    ('please add "Buy milk"', ("add_task", {"title": "Buy milk"})),
    ("Please add a task to buy milk!", ADD_MILK),
    ('Can you add "Buy milk", please?', ("add_task", {"title": "Buy milk"})),
    ("  add   a task to    buy milk  ", ADD_MILK),
    ("ADD A TASK TO Buy Milk.", ("add_task", {"title": "Buy Milk"})),
    ("could you add a task to buy milk please", ADD_MILK),
    ("add items to pack", ("add_task", {"title": "items to pack"})),
    ("remind me to send thanks", ("add_task", {"title": "send thanks"})),
    (
        "add a task to buy milk with description 2 litres",
        ("add_task", {"title": "buy milk", "description": "2 litres"}),
    ),
    (
        "add a task to buy milk (description: 2 litres)",
        ("add_task", {"title": "buy milk", "description": "2 litres"}),
    ),
    # list_tasks
    ("list my tasks", LIST_ALL),
    ("show my tasks", LIST_ALL),
    ("what are my tasks", LIST_ALL),
    ("what's on my list", LIST_ALL),
    ("What\u2019s on my to-do list?", LIST_ALL),
    ("show my todos", LIST_ALL),
    ("Show me all my tasks, please.", LIST_ALL),
    ("show my pending tasks", LIST_PENDING),
    ("what do I still have to do", LIST_PENDING),
    ("What do I still have to do?", LIST_PENDING),
    ("list open tasks", LIST_PENDING),
    ("what have I completed", LIST_COMPLETED),
    ("show completed tasks", LIST_COMPLETED),
    ("what did I finish", LIST_COMPLETED),
    ("list done tasks", LIST_COMPLETED),
    ("which tasks are done?", LIST_COMPLETED),
    # complete_task
    ("complete buy milk", COMPLETE_MILK),
    ("mark buy milk as done", COMPLETE_MILK),
    ("mark buy milk as complete", COMPLETE_MILK),
    ("mark buy milk as completed", COMPLETE_MILK),
    ("I finished buy milk", COMPLETE_MILK),
    ("done with buy milk", COMPLETE_MILK),
    ("check off buy milk", COMPLETE_MILK),
    ("finish the task buy milk", COMPLETE_MILK),
    ("Mark 'buy milk' as done!", COMPLETE_MILK),
    ("could you please mark the buy milk task as done?", COMPLETE_MILK),
    ("complete task: buy milk", COMPLETE_MILK),
    # update_task
    ("rename buy milk to buy oat milk", RENAME_MILK),
    ("change buy milk to buy oat milk", RENAME_MILK),
    ('rename the task "buy milk" to "buy oat milk"', RENAME_MILK),
    ("Rename \u201cbuy milk\u201d to \u201cbuy oat milk\u201d.", RENAME_MILK),
    (
        'rename "go to the store" to "go to the mall"',
        ("update_task", {"title": "go to the store", "new_title": "go to the mall"}),
    ),
    (
        "change the description of buy milk to semi-skimmed",
        ("update_task", {"title": "buy milk", "description": "semi-skimmed"}),
    ),
    # delete_task
    ("delete buy milk", DELETE_MILK),
    ("remove the task buy milk", DELETE_MILK),
    ("remove buy milk from my list", DELETE_MILK),
    ("delete the todo buy milk", DELETE_MILK),
    ("cancel buy milk", DELETE_MILK),
    ('Please delete "buy milk".', DELETE_MILK),
    # A quoted title is taken as written, even when it starts like a wrapper.
    ('delete the "Task force meeting"', ("delete_task", {"title": "Task force meeting"})),
    ('delete the "big" report', ("delete_task", {"title": 'the "big" report'})),
]


@pytest.mark.parametrize(("text", "expected"), PHRASINGS, ids=[text for text, _ in PHRASINGS])
def test_parse_intent(text: str, expected: Intent) -> None:
    assert parse_intent(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "what's the weather",
        "",
        "   ",
        "hello",
        "thanks",
        "add task",
        "add a to-do",
        "delete the task",
        "delete it",
        "delete all tasks",
        "complete task",
        "rename buy milk",
    ],
)
def test_parse_intent_rejects(text: str) -> None:
    assert parse_intent(text) is None


# --------------------------------------------------------------------------- helpers


def user(text: str) -> ChatMessage:
    return {"role": "user", "content": text}


def tool_call_message(call_id: str, name: str, arguments: dict[str, Any]) -> ChatMessage:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
        ],
    }


def tool_result(call_id: str, result: dict[str, Any]) -> ChatMessage:
    return {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)}


def task(title: str, status: str = "PENDING", description: str | None = None) -> dict[str, Any]:
    return {"id": f"t-{title}", "title": title, "description": description, "status": status}


def round_trip(name: str, arguments: dict[str, Any], result: dict[str, Any]) -> list[ChatMessage]:
    return [
        user("anything"),
        tool_call_message("call_1", name, arguments),
        tool_result("call_1", result),
    ]


async def ask(messages: list[ChatMessage]) -> ModelReply:
    return await OfflineProvider().complete(messages, [])


# --------------------------------------------------------------------------- complete()


async def test_works_as_a_model_provider_through_the_protocol() -> None:
    """Used only through `ModelProvider`: a step answers, streams its text to the sink in
    pieces that add up to the content, and the provider closes."""
    provider: ModelProvider = OfflineProvider()
    pieces: list[str] = []

    async def sink(piece: str) -> None:
        pieces.append(piece)

    reply = await provider.complete([user("hello there")], [], on_delta=sink)
    assert isinstance(reply, ModelReply)
    assert provider.name == "offline"
    assert reply.content
    assert not reply.tool_calls
    assert "".join(pieces) == reply.content
    await provider.aclose()


@pytest.mark.asyncio
async def test_user_message_becomes_one_tool_call() -> None:
    reply = await ask([user("add a task to buy milk")])
    assert reply.content == ""
    assert len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    assert (call.id, call.name) == ("call_1", "add_task")
    assert json.loads(call.arguments) == {"title": "buy milk"}
    assert reply.model == "offline"


@pytest.mark.asyncio
async def test_tool_call_ids_count_earlier_calls() -> None:
    messages = [
        *round_trip("add_task", {"title": "buy milk"}, {"ok": True, "task": task("buy milk")}),
        {"role": "assistant", "content": 'Added "buy milk" to your tasks.'},
        user("list my tasks"),
    ]
    reply = await ask(messages)
    assert [(c.id, c.name) for c in reply.tool_calls] == [("call_2", "list_tasks")]


@pytest.mark.asyncio
async def test_unknown_text_gets_help_without_tool_call() -> None:
    reply = await ask([user("what's the weather")])
    assert reply.tool_calls == []
    assert HINT in reply.content
    assert "list my tasks" in reply.content


@pytest.mark.asyncio
@pytest.mark.parametrize("text", ["hi", "Hello!", "thanks", "Thank you!"])
async def test_small_talk_is_friendly(text: str) -> None:
    reply = await ask([user(text)])
    assert reply.tool_calls == []
    assert reply.content.endswith(HINT)
    assert reply.content != HINT
    assert not reply.content.startswith("Sorry")


@pytest.mark.asyncio
async def test_tool_not_offered_is_not_called() -> None:
    tools = [{"type": "function", "function": {"name": "list_tasks", "parameters": {}}}]
    reply = await OfflineProvider().complete([user("delete buy milk")], tools)
    assert reply.tool_calls == []
    assert reply.content.startswith("Sorry")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("name", "arguments", "result", "expected"),
    [
        (
            "add_task",
            {"title": "buy milk"},
            {"ok": True, "task": task("buy milk")},
            'Added "buy milk" to your tasks.',
        ),
        (
            "list_tasks",
            {"status": "PENDING"},
            {"ok": True, "tasks": [task("buy milk"), task("call mom")], "status": "PENDING"},
            "You have 2 pending tasks:\n1. buy milk\n2. call mom",
        ),
        (
            "list_tasks",
            {"status": "PENDING"},
            {"ok": True, "tasks": [task("buy milk")], "status": "PENDING"},
            "You have 1 pending task:\n1. buy milk",
        ),
        (
            "list_tasks",
            {"status": "PENDING"},
            {"ok": True, "tasks": [], "status": "PENDING"},
            "You have no pending tasks.",
        ),
        (
            "list_tasks",
            {"status": "COMPLETED"},
            {"ok": True, "tasks": [task("buy milk", "COMPLETED")], "status": "COMPLETED"},
            "You have completed 1 task:\n1. buy milk",
        ),
        (
            "list_tasks",
            {"status": "COMPLETED"},
            {"ok": True, "tasks": [], "status": "COMPLETED"},
            "You have no completed tasks.",
        ),
        (
            "list_tasks",
            {},
            {
                "ok": True,
                "tasks": [task("buy milk", "COMPLETED"), task("call mom")],
                "status": None,
            },
            "You have 2 tasks:\n1. buy milk (done)\n2. call mom",
        ),
        (
            "list_tasks",
            {},
            {"ok": True, "tasks": [], "status": None},
            "You have no tasks.",
        ),
        (
            "complete_task",
            {"title": "buy milk"},
            {"ok": True, "task": task("Buy milk", "COMPLETED")},
            'Marked "Buy milk" as done.',
        ),
        (
            "update_task",
            {"title": "buy milk", "new_title": "buy oat milk"},
            {"ok": True, "task": task("buy oat milk"), "previous_title": "buy milk"},
            'Renamed "buy milk" to "buy oat milk".',
        ),
        (
            "update_task",
            {"title": "buy milk", "new_title": "buy oat milk"},
            {"ok": True, "task": task("buy oat milk")},
            'Renamed "buy milk" to "buy oat milk".',
        ),
        (
            "update_task",
            {"title": "buy milk", "description": "2 litres"},
            {"ok": True, "task": task("buy milk", description="2 litres")},
            'Updated "buy milk".',
        ),
        (
            "delete_task",
            {"title": "buy milk"},
            {"ok": True, "deleted": {"id": "t-1", "title": "buy milk"}},
            'Deleted "buy milk".',
        ),
        (
            "delete_task",
            {"title": "buy milk"},
            {"ok": False, "error": 'no task matches "buy milk"'},
            'Sorry, I couldn\'t do that: no task matches "buy milk"',
        ),
    ],
)
async def test_answer_from_tool_result(
    name: str, arguments: dict[str, Any], result: dict[str, Any], expected: str
) -> None:
    reply = await ask(round_trip(name, arguments, result))
    assert reply.tool_calls == []
    assert reply.content == expected


@pytest.mark.asyncio
async def test_answer_uses_only_results_after_last_assistant_message() -> None:
    messages = [
        *round_trip("add_task", {"title": "buy milk"}, {"ok": True, "task": task("buy milk")}),
        {"role": "assistant", "content": 'Added "buy milk" to your tasks.'},
        user("delete call mom"),
        tool_call_message("call_2", "delete_task", {"title": "call mom"}),
        tool_result("call_2", {"ok": True, "deleted": {"id": "t-2", "title": "call mom"}}),
    ]
    reply = await ask(messages)
    assert reply.content == 'Deleted "call mom".'


@pytest.mark.asyncio
async def test_unreadable_tool_result_is_an_apology() -> None:
    messages = [
        user("list my tasks"),
        tool_call_message("call_1", "list_tasks", {}),
        {"role": "tool", "tool_call_id": "call_1", "content": "not json"},
    ]
    reply = await ask(messages)
    assert reply.content.startswith("Sorry")


@pytest.mark.asyncio
async def test_full_turn_from_request_to_answer() -> None:
    provider = OfflineProvider()
    messages = [user("Please add a task to buy milk!")]
    first = await provider.complete(messages, [])
    (call,) = first.tool_calls
    messages.append(
        tool_call_message(call.id, call.name, json.loads(call.arguments)),
    )
    messages.append(tool_result(call.id, {"ok": True, "task": task("buy milk")}))
    second = await provider.complete(messages, [])
    assert second.tool_calls == []
    assert second.content == 'Added "buy milk" to your tasks.'


# --------------------------------------------------------------------------- streaming


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "messages",
    [
        [user("what's the weather")],
        round_trip(
            "list_tasks",
            {},
            {"ok": True, "tasks": [task("buy milk"), task("call  mom")], "status": None},
        ),
    ],
    ids=["help", "list"],
)
async def test_deltas_join_to_content(messages: list[ChatMessage]) -> None:
    pieces: list[str] = []

    async def sink(piece: str) -> None:
        pieces.append(piece)

    reply = await OfflineProvider().complete(messages, [], on_delta=sink)
    assert len(pieces) > 1
    assert "".join(pieces) == reply.content
    assert all(piece for piece in pieces)


@pytest.mark.asyncio
async def test_no_deltas_for_tool_call_reply() -> None:
    pieces: list[str] = []

    async def sink(piece: str) -> None:
        pieces.append(piece)

    reply = await OfflineProvider().complete([user("list my tasks")], [], on_delta=sink)
    assert reply.tool_calls
    assert pieces == []


# --------------------------------------------------------------------------- determinism


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "messages",
    [
        [user("add a task to buy milk")],
        [user("what's the weather")],
        round_trip("add_task", {"title": "buy milk"}, {"ok": True, "task": task("buy milk")}),
    ],
    ids=["tool-call", "help", "answer"],
)
async def test_deterministic(messages: list[ChatMessage]) -> None:
    first = await OfflineProvider().complete(messages, [])
    second = await OfflineProvider().complete(messages, [])
    assert first == second


@pytest.mark.asyncio
async def test_token_counts_are_estimates_and_say_so() -> None:
    reply = await ask([user("what's the weather today")])
    assert reply.tokens_estimated is True
    assert reply.prompt_tokens is not None
    assert reply.prompt_tokens > 0
    assert reply.completion_tokens == -(-len(reply.content) // 4)


@pytest.mark.asyncio
async def test_aclose_is_a_no_op() -> None:
    provider = OfflineProvider()
    await provider.aclose()
    reply = await provider.complete([user("list my tasks")], [])
    assert reply.tool_calls
