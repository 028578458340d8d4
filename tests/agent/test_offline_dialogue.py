"""The offline agent asks back when a reference is ambiguous or loose, understands the
answer in the next message, and never deletes on a guess. Through the real server, on
both databases."""

from __future__ import annotations

from typing import Any

from tests.agent.test_chat_offline import create_task, send
from tests.agent.turns import tasks_of
from tests.conftest import GraphQLClient


def calls_of(payload: dict[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
    return [(c["name"], c["arguments"], c["ok"]) for c in payload["message"]["toolCalls"]]


async def test_same_title_twice_asks_which_and_understands_the_second_one(
    alice: GraphQLClient,
) -> None:
    await create_task(alice, "buy milk")
    second = await create_task(alice, "buy milk")

    asked = await send(alice, "complete buy milk")
    conversation = asked["conversation"]["id"]
    answered = await send(alice, "the second one", conversation)

    assert calls_of(asked) == [("complete_task", {"title": "buy milk"}, False)]
    assert asked["message"]["content"].startswith('2 tasks are called "buy milk"')
    assert "1. buy milk\n2. buy milk" in asked["message"]["content"]
    assert calls_of(answered) == [("complete_task", {"task_id": second}, True)]
    assert answered["message"]["content"] == 'Marked "buy milk" as done.'
    assert await tasks_of(alice) == [("buy milk", "COMPLETED"), ("buy milk", "PENDING")]


async def test_a_fact_about_one_loosely_named_task_completes_it(alice: GraphQLClient) -> None:
    report = await create_task(alice, "Write the report")
    await create_task(alice, "call mom")

    reply = await send(alice, "the report is finished")

    assert calls_of(reply) == [
        ("complete_task", {"title": "the report"}, False),
        ("list_tasks", {}, True),
        ("complete_task", {"task_id": report}, True),
    ]
    assert reply["message"]["content"] == 'Marked "Write the report" as done.'
    assert await tasks_of(alice) == [("Write the report", "COMPLETED"), ("call mom", "PENDING")]


async def test_several_loose_matches_ask_and_the_exact_title_answers(
    alice: GraphQLClient,
) -> None:
    await create_task(alice, "Write the report")
    expenses = await create_task(alice, "Report expenses")
    await create_task(alice, "call mom")

    asked = await send(alice, "the report is done")
    answered = await send(alice, "Report expenses", asked["conversation"]["id"])

    content = asked["message"]["content"]
    assert content.startswith('Several tasks match "the report"')
    assert "1. Write the report\n2. Report expenses" in content
    assert "call mom" not in content
    assert calls_of(answered) == [("complete_task", {"task_id": expenses}, True)]
    assert await tasks_of(alice) == [
        ("Report expenses", "COMPLETED"),
        ("Write the report", "PENDING"),
        ("call mom", "PENDING"),
    ]


async def test_delete_never_acts_on_a_guess_and_waits_for_yes(alice: GraphQLClient) -> None:
    report = await create_task(alice, "Write the report")

    asked = await send(alice, "delete the report")
    unchanged = await tasks_of(alice)
    confirmed = await send(alice, "yes", asked["conversation"]["id"])

    assert [name for name, _, _ in calls_of(asked)] == ["delete_task", "list_tasks"]
    assert asked["message"]["content"].startswith('Do you mean "Write the report"?')
    assert unchanged == [("Write the report", "PENDING")]
    assert calls_of(confirmed) == [("delete_task", {"task_id": report}, True)]
    assert confirmed["message"]["content"] == 'Deleted "Write the report".'
    assert await tasks_of(alice) == []


async def test_no_to_a_question_changes_nothing(alice: GraphQLClient) -> None:
    await create_task(alice, "Write the report")

    asked = await send(alice, "remove the report")
    declined = await send(alice, "no", asked["conversation"]["id"])

    assert calls_of(declined) == []
    assert declined["message"]["content"] == "OK, I left your tasks as they are."
    assert await tasks_of(alice) == [("Write the report", "PENDING")]


async def test_a_new_request_after_a_question_is_read_afresh(alice: GraphQLClient) -> None:
    await create_task(alice, "buy milk")
    await create_task(alice, "buy milk")

    asked = await send(alice, "delete buy milk")
    fresh = await send(alice, "add a task to call mom", asked["conversation"]["id"])

    assert calls_of(fresh) == [("add_task", {"title": "call mom"}, True)]
    assert await tasks_of(alice) == [
        ("buy milk", "PENDING"),
        ("buy milk", "PENDING"),
        ("call mom", "PENDING"),
    ]


async def test_nothing_matching_says_so_and_changes_nothing(alice: GraphQLClient) -> None:
    await create_task(alice, "call mom")

    reply = await send(alice, "the dishes are done")

    assert [name for name, _, _ in calls_of(reply)] == ["complete_task", "list_tasks"]
    assert reply["message"]["content"] == (
        'I couldn\'t find a task matching "the dishes". Your tasks: "call mom".'
    )
    assert await tasks_of(alice) == [("call mom", "PENDING")]
