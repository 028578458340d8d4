"""Tasks through the GraphQL API: create, update, complete, reopen, delete, list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.conftest import GraphQLClient

TASK_FIELDS = "id title description status createdAt updatedAt completedAt"

CREATE = f"""
mutation($title: String!, $description: String) {{
  createTask(input: {{title: $title, description: $description}}) {{ task {{ {TASK_FIELDS} }} }}
}}"""
UPDATE_TITLE = f"""
mutation($id: ID!, $title: String) {{
  updateTask(input: {{id: $id, title: $title}}) {{ task {{ {TASK_FIELDS} }} }}
}}"""
UPDATE_DESCRIPTION = f"""
mutation($id: ID!, $description: String) {{
  updateTask(input: {{id: $id, description: $description}}) {{ task {{ {TASK_FIELDS} }} }}
}}"""
UPDATE_BOTH = f"""
mutation($id: ID!, $title: String, $description: String) {{
  updateTask(input: {{id: $id, title: $title, description: $description}}) {{
    task {{ {TASK_FIELDS} }}
  }}
}}"""
COMPLETE = (
    f"mutation($id: ID!) {{ completeTask(input: {{id: $id}}) {{ task {{ {TASK_FIELDS} }} }} }}"
)
REOPEN = f"mutation($id: ID!) {{ reopenTask(input: {{id: $id}}) {{ task {{ {TASK_FIELDS} }} }} }}"
DELETE = "mutation($id: ID!) { deleteTask(input: {id: $id}) { deletedId } }"
TASK = f"query($id: ID!) {{ task(id: $id) {{ {TASK_FIELDS} }} }}"
NODE = "query($id: ID!) { node(id: $id) { id ... on Task { title status } } }"
LIST = """
query($status: TaskStatus) {
  tasks(first: 100, status: $status) { totalCount edges { node { id title status } } }
}"""


async def create(
    client: GraphQLClient, title: str, description: str | None = None
) -> dict[str, Any]:
    data = await client.data(CREATE, {"title": title, "description": description})
    return data["createTask"]["task"]  # type: ignore[no-any-return]


async def fetch(client: GraphQLClient, task_id: str) -> dict[str, Any] | None:
    return (await client.data(TASK, {"id": task_id}))["task"]  # type: ignore[no-any-return]


async def listed_titles(client: GraphQLClient, status: str | None = None) -> list[str]:
    connection = (await client.data(LIST, {"status": status}))["tasks"]
    titles = [edge["node"]["title"] for edge in connection["edges"]]
    assert connection["totalCount"] == len(titles)
    return titles


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_new_task_is_pending_and_not_completed(alice: GraphQLClient) -> None:
    task = await create(alice, "  water plants  ", "the ones on the balcony")
    assert task["title"] == "water plants"
    assert task["description"] == "the ones on the balcony"
    assert task["status"] == "PENDING"
    assert task["completedAt"] is None
    assert task["createdAt"] == task["updatedAt"]
    assert instant(task["createdAt"]).utcoffset() is not None
    assert await fetch(alice, task["id"]) == task


async def test_description_is_optional_and_blank_means_none(alice: GraphQLClient) -> None:
    without = await create(alice, "no description")
    blank = await create(alice, "blank description", "   ")
    assert without["description"] is None
    assert blank["description"] is None
    stored = await fetch(alice, blank["id"])
    assert stored is not None
    assert stored["description"] is None


async def test_blank_title_is_bad_user_input(alice: GraphQLClient) -> None:
    assert await alice.error_code(CREATE, {"title": "   "}) == "BAD_USER_INPUT"
    assert await listed_titles(alice) == []


async def test_update_title_keeps_description(alice: GraphQLClient) -> None:
    task = await create(alice, "buy milk", "two litres")
    updated = (await alice.data(UPDATE_TITLE, {"id": task["id"], "title": "buy oat milk"}))[
        "updateTask"
    ]["task"]
    assert updated["title"] == "buy oat milk"
    assert updated["description"] == "two litres"
    assert updated["createdAt"] == task["createdAt"]
    assert instant(updated["updatedAt"]) > instant(task["updatedAt"])
    assert await fetch(alice, task["id"]) == updated


async def test_update_description_keeps_title(alice: GraphQLClient) -> None:
    task = await create(alice, "call mom", "about sunday")
    updated = (
        await alice.data(UPDATE_DESCRIPTION, {"id": task["id"], "description": "about monday"})
    )["updateTask"]["task"]
    assert updated["title"] == "call mom"
    assert updated["description"] == "about monday"
    assert instant(updated["updatedAt"]) > instant(task["updatedAt"])


async def test_update_both_fields_at_once(alice: GraphQLClient) -> None:
    task = await create(alice, "old title", "old description")
    variables = {"id": task["id"], "title": "new title", "description": "new description"}
    updated = (await alice.data(UPDATE_BOTH, variables))["updateTask"]["task"]
    assert (updated["title"], updated["description"]) == ("new title", "new description")
    assert updated["status"] == "PENDING"


async def test_update_with_empty_description_clears_it(alice: GraphQLClient) -> None:
    task = await create(alice, "call mom", "about sunday")
    updated = (await alice.data(UPDATE_DESCRIPTION, {"id": task["id"], "description": ""}))[
        "updateTask"
    ]["task"]
    assert updated["description"] is None
    assert updated["title"] == "call mom"


async def test_update_to_blank_title_is_bad_user_input_and_changes_nothing(
    alice: GraphQLClient,
) -> None:
    task = await create(alice, "keep me")
    code = await alice.error_code(UPDATE_TITLE, {"id": task["id"], "title": " "})
    assert code == "BAD_USER_INPUT"
    assert await fetch(alice, task["id"]) == task


async def test_complete_sets_completed_at(alice: GraphQLClient) -> None:
    task = await create(alice, "file taxes")
    completed = (await alice.data(COMPLETE, {"id": task["id"]}))["completeTask"]["task"]
    assert completed["status"] == "COMPLETED"
    assert completed["completedAt"] is not None
    assert instant(completed["completedAt"]) >= instant(task["createdAt"])
    assert completed["updatedAt"] == completed["completedAt"]
    assert await fetch(alice, task["id"]) == completed


async def test_completing_twice_keeps_the_first_completed_at(alice: GraphQLClient) -> None:
    task = await create(alice, "file taxes")
    first = (await alice.data(COMPLETE, {"id": task["id"]}))["completeTask"]["task"]
    second = (await alice.data(COMPLETE, {"id": task["id"]}))["completeTask"]["task"]
    assert second["status"] == "COMPLETED"
    assert second["completedAt"] == first["completedAt"]
    assert second["updatedAt"] == first["updatedAt"]


async def test_reopen_clears_completed_at(alice: GraphQLClient) -> None:
    task = await create(alice, "file taxes")
    completed = (await alice.data(COMPLETE, {"id": task["id"]}))["completeTask"]["task"]
    reopened = (await alice.data(REOPEN, {"id": task["id"]}))["reopenTask"]["task"]
    assert reopened["status"] == "PENDING"
    assert reopened["completedAt"] is None
    assert instant(reopened["updatedAt"]) > instant(completed["updatedAt"])
    assert await fetch(alice, task["id"]) == reopened


async def test_deleted_task_disappears(alice: GraphQLClient) -> None:
    doomed = await create(alice, "doomed")
    await create(alice, "survivor")

    deleted = await alice.data(DELETE, {"id": doomed["id"]})

    assert deleted["deleteTask"]["deletedId"] == doomed["id"]
    assert await fetch(alice, doomed["id"]) is None
    assert (await alice.data(NODE, {"id": doomed["id"]}))["node"] is None
    assert await listed_titles(alice) == ["survivor"]


async def test_mutations_on_a_deleted_task_are_not_found(alice: GraphQLClient) -> None:
    task = await create(alice, "short-lived")
    await alice.data(DELETE, {"id": task["id"]})
    assert await alice.error_code(DELETE, {"id": task["id"]}) == "NOT_FOUND"
    assert await alice.error_code(COMPLETE, {"id": task["id"]}) == "NOT_FOUND"
    assert await alice.error_code(REOPEN, {"id": task["id"]}) == "NOT_FOUND"
    assert await alice.error_code(UPDATE_TITLE, {"id": task["id"], "title": "x"}) == "NOT_FOUND"


async def test_other_users_task_does_not_exist_for_you(
    alice: GraphQLClient, bob: GraphQLClient
) -> None:
    task = await create(alice, "alice's task")
    assert await fetch(bob, task["id"]) is None
    assert (await bob.data(NODE, {"id": task["id"]}))["node"] is None
    assert await bob.error_code(COMPLETE, {"id": task["id"]}) == "NOT_FOUND"
    assert await bob.error_code(DELETE, {"id": task["id"]}) == "NOT_FOUND"
    assert await listed_titles(bob) == []
    assert await fetch(alice, task["id"]) == task


async def test_tasks_list_newest_first_and_filters_by_status(alice: GraphQLClient) -> None:
    for title in ("first", "second", "third", "fourth"):
        await create(alice, title)
    listed = (await alice.data(LIST))["tasks"]["edges"]
    ids = {edge["node"]["title"]: edge["node"]["id"] for edge in listed}
    await alice.data(COMPLETE, {"id": ids["second"]})
    await alice.data(COMPLETE, {"id": ids["fourth"]})

    assert await listed_titles(alice) == ["fourth", "third", "second", "first"]
    assert await listed_titles(alice, "COMPLETED") == ["fourth", "second"]
    assert await listed_titles(alice, "PENDING") == ["third", "first"]


async def test_completing_does_not_reorder_the_list(alice: GraphQLClient) -> None:
    older = await create(alice, "older")
    await create(alice, "newer")
    await alice.data(COMPLETE, {"id": older["id"]})
    await alice.data(UPDATE_TITLE, {"id": older["id"], "title": "older, renamed"})
    assert await listed_titles(alice) == ["newer", "older, renamed"]


async def test_node_returns_a_task_by_its_id(alice: GraphQLClient) -> None:
    task = await create(alice, "find me")
    data = await alice.data(NODE, {"id": task["id"]})
    assert data["node"] == {"id": task["id"], "title": "find me", "status": "PENDING"}
