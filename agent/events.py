"""What a streamed turn reports, in order: the stored question, the reply stored as
STREAMING, pieces of the reply's text and each tool call as it completes (numbered
1, 2, 3, … per reply), then the stored reply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from db.models import Message


@dataclass(frozen=True, slots=True)
class UserMessageSaved:
    message: Message


@dataclass(frozen=True, slots=True)
class ReplyStarted:
    message: Message


@dataclass(frozen=True, slots=True)
class ReplyDelta:
    text: str
    sequence: int = 0
    #: where `text` starts in the reply's content (code points)
    offset: int = 0


@dataclass(frozen=True, slots=True)
class ToolCallCompleted:
    record: dict[str, Any]
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class ReplyCompleted:
    message: Message


TurnEvent = UserMessageSaved | ReplyStarted | ReplyDelta | ToolCallCompleted | ReplyCompleted
