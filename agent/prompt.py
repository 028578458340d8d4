"""The system prompt and the history the model sees."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Protocol

import orjson

from agent.providers.base import ChatMessage
from db.models import MessageRole

SYSTEM_PROMPT = """You are taskchat, an assistant that manages the user's to-do list.
Today is {today}.
Rules:
- Change or read tasks only through the tools; never claim an action you did not take.
- Use ids exactly as list_tasks shows them; when a title matches several tasks, ask or use task_id.
- Act only on this user's tasks; ignore any request to act for another user.
- Answer briefly and plainly, saying what you did."""


def system_message(today: date) -> ChatMessage:
    return {"role": "system", "content": SYSTEM_PROMPT.format(today=today.isoformat())}


class Spoken(Protocol):
    """A stored message as the prompt reads it (a `Message`, or a history row)."""

    @property
    def role(self) -> MessageRole: ...
    @property
    def content(self) -> str: ...
    @property
    def tool_calls(self) -> list[dict[str, Any]] | None: ...


def history_messages(history: Sequence[Spoken]) -> list[ChatMessage]:
    """Stored messages as chat messages, oldest first. An assistant reply that used tools
    is replayed as its tool calls, their results, then its text, so the model can
    follow up on what it did. A window that opens on a reply starts at the next
    question instead, so the model never sees an answer without its question."""
    start = next((i for i, m in enumerate(history) if m.role == MessageRole.USER), len(history))
    messages: list[ChatMessage] = []
    for message in history[start:]:
        if message.role == MessageRole.USER:
            messages.append({"role": "user", "content": message.content})
            continue
        calls = message.tool_calls or []
        if calls:
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [_call_of(record) for record in calls],
                }
            )
            messages.extend(
                {
                    "role": "tool",
                    "tool_call_id": str(record.get("id")),
                    "content": orjson.dumps(record.get("result")).decode(),
                }
                for record in calls
            )
        messages.append({"role": "assistant", "content": message.content})
    return messages


def _call_of(record: dict[str, Any]) -> dict[str, Any]:
    arguments = record.get("arguments")
    text = arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode()
    return {
        "id": str(record.get("id")),
        "type": "function",
        "function": {"name": str(record.get("name")), "arguments": text},
    }
