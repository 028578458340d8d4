"""What the turn loop needs from a model, whichever provider answers.

Messages use the chat-completions shape (``{"role": ..., "content": ...}``, assistant
messages may carry ``tool_calls``, tool results are ``{"role": "tool", "tool_call_id":
..., "content": "<json>"}``) because both Groq and the offline agent speak it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

ChatMessage = dict[str, Any]
ToolSpec = dict[str, Any]
DeltaSink = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """One tool call the model asked for; ``arguments`` is the raw JSON text it sent."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class ModelReply:
    """One model step: either text for the user, tool calls to run, or both. The token
    counts are the provider's, `None` when it sent none (the turn estimates them then);
    `tokens_estimated` when the provider's counts are themselves an estimate."""

    content: str
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_estimated: bool = False


class ModelProvider(Protocol):
    """A chat model that may call tools.

    ``on_delta``, when given, receives the reply text in pieces as it is produced; the
    pieces concatenate to ``ModelReply.content``. ``deadline``, when given, is the event
    loop time (``asyncio.get_running_loop().time()``) by which the turn must be done: a
    provider never waits (e.g. for a rate limit to pass) beyond it.
    """

    name: str

    async def complete(
        self,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        *,
        on_delta: DeltaSink | None = None,
        deadline: float | None = None,
    ) -> ModelReply: ...

    async def aclose(self) -> None: ...
