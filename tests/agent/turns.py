"""What the chat tests share: sendMessage input and the user's tasks as a client sees them."""

from __future__ import annotations

from typing import Any

from tests.conftest import GraphQLClient

TASKS = "{ tasks(first: 100) { totalCount edges { node { id title status } } } }"


def send_input(
    content: str, conversation_id: str | None, client_message_id: str | None
) -> dict[str, Any]:
    values: dict[str, Any] = {"content": content}
    if conversation_id is not None:
        values["conversationId"] = conversation_id
    if client_message_id is not None:
        values["clientMessageId"] = client_message_id
    return values


async def tasks_of(client: GraphQLClient) -> list[tuple[str, str]]:
    """(title, status) of the user's tasks, sorted."""
    edges = (await client.data(TASKS))["tasks"]["edges"]
    return sorted((edge["node"]["title"], edge["node"]["status"]) for edge in edges)
