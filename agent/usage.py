"""What a turn spent: the provider's token counts summed over the turn's steps, or an
estimate where the provider sent none.

A step's counts come from the provider when it sends them (Groq: `usage`, or
`x_groq.usage` on a stream's last chunk; the offline agent sends estimates, and says so).
A step that ended without counts (a stream cut off by a stop, a cancellation or the
deadline never got them) is estimated from the text sent and received, about four
characters a token, and the turn's usage says `estimated`. A step the provider refused
(an error answer before any text) spent nothing and is not counted.

`UsageMeter.spent()` may be called at any point, so a reply stopped mid-stream records
what it spent up to the stop the same way a failed or cancelled turn does.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from agent.providers.base import ChatMessage, ModelReply, ToolSpec

#: characters per token for an estimate (the usual rule of thumb for English and JSON)
CHARS_PER_TOKEN = 4


def estimate_tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN) if chars > 0 else 0


def sent_chars(messages: list[ChatMessage], tools: list[ToolSpec]) -> int:
    """The size of a request's messages and tool specs, as JSON."""
    return len(orjson.dumps(messages)) + (len(orjson.dumps(tools)) if tools else 0)


def produced_chars(reply: ModelReply) -> int:
    return len(reply.content) + sum(
        len(call.name) + len(call.arguments) for call in reply.tool_calls
    )


@dataclass(frozen=True, slots=True)
class TurnUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False
    model: str = ""
    #: steps that spent something (a refused request is not one)
    steps: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class _OpenStep:
    """A model request under way. Its prompt's size is measured only if it is needed (a
    provider that sends its counts never needs it)."""

    messages: list[ChatMessage]
    tools: list[ToolSpec]
    received_chars: int = 0

    @property
    def prompt_chars(self) -> int:
        return sent_chars(self.messages, self.tools)


class UsageMeter:
    """Counts one turn. The loop calls `begin_step` before each model request,
    `received` for each piece of streamed text and `end_step` with the step's reply."""

    def __init__(self) -> None:
        self._prompt = 0
        self._completion = 0
        self._estimated = False
        self._model = ""
        self._steps = 0
        self._open: _OpenStep | None = None

    def begin_step(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> None:
        # a copy of the list: the loop appends this step's reply to the one it sends
        self._open = _OpenStep(list(messages), tools)

    def received(self, text: str) -> None:
        if self._open is not None:
            self._open.received_chars += len(text)

    def end_step(self, reply: ModelReply) -> None:
        step, self._open = self._open, None
        self._steps += 1
        self._model = reply.model or self._model
        if reply.prompt_tokens is not None and reply.completion_tokens is not None:
            self._prompt += reply.prompt_tokens
            self._completion += reply.completion_tokens
            self._estimated = self._estimated or reply.tokens_estimated
            return
        self._add_estimate(step.prompt_chars if step else 0, produced_chars(reply))

    def failed(self) -> None:
        """The provider answered the open step with an error: nothing was spent on it,
        unless text had arrived already (a stream cut off midway stays, estimated)."""
        if self._open is not None and self._open.received_chars == 0:
            self._open = None

    def spent(self) -> TurnUsage:
        """The turn's usage so far; a step still open (cut off) counts as estimated."""
        prompt, completion, estimated, steps = (
            self._prompt,
            self._completion,
            self._estimated,
            self._steps,
        )
        if self._open is not None:
            prompt += estimate_tokens(self._open.prompt_chars)
            completion += estimate_tokens(self._open.received_chars)
            estimated, steps = True, steps + 1
        return TurnUsage(prompt, completion, estimated, self._model, steps)

    def _add_estimate(self, prompt_chars: int, completion_chars: int) -> None:
        self._prompt += estimate_tokens(prompt_chars)
        self._completion += estimate_tokens(completion_chars)
        self._estimated = True
