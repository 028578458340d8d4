"""What a streamed turn reports, in order: the stored question, pieces of the reply's
text and each tool call as it completes, then the stored reply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from db.models import Message


@dataclass(frozen=True, slots=True)
class UserMessageSaved:
    message: Message


@dataclass(frozen=True, slots=True)
class ReplyDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallCompleted:
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReplyCompleted:
    message: Message


TurnEvent = UserMessageSaved | ReplyDelta | ToolCallCompleted | ReplyCompleted
