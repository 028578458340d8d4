"""A deterministic, offline stand-in for a chat model that manages tasks.

It turns a user message into exactly one tool call (``grammar``); once the tool results
come back it words the answer from them (``wording``). No network, no randomness, no
clock: the same messages always give the same reply, which makes it the provider for
tests, demos and running without an API key.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from agent.providers.base import (
    ChatMessage,
    DeltaSink,
    ModelReply,
    ToolCallRequest,
    ToolSpec,
)
from agent.providers.offline.grammar import parse_intent
from agent.providers.offline.resolve import after_results, answer_to, turn_steps
from agent.providers.offline.wording import (
    HINT,
    ask_which,
    describe_result,
    not_found,
    small_talk,
)
from agent.usage import estimate_tokens, produced_chars, sent_chars

__all__ = ["MODEL_NAME", "OfflineProvider"]

MODEL_NAME = "offline"


def _message_text(message: ChatMessage) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # chat-completions content parts
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _calls_of(message: ChatMessage) -> list[tuple[str, str, dict[str, Any]]]:
    """``(id, name, arguments)`` of each tool call an assistant message carries."""
    calls: list[tuple[str, str, dict[str, Any]]] = []
    for call in message.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        spec: dict[str, Any] = function if isinstance(function, dict) else call
        try:
            args = json.loads(spec.get("arguments") or "{}")
        except (TypeError, ValueError):
            args = {}
        calls.append(
            (
                str(call.get("id", "")),
                str(spec.get("name", "")),
                args if isinstance(args, dict) else {},
            )
        )
    return calls


def _answer_tool_results(messages: list[ChatMessage]) -> str:
    start = 0
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "assistant":
            start = index + 1
            calls = {id_: (name, args) for id_, name, args in _calls_of(messages[index])}
            break
    lines = []
    for message in messages[start:]:
        if message.get("role") != "tool":
            continue
        name, args = calls.get(str(message.get("tool_call_id")), (None, {}))
        lines.append(describe_result(name or None, args, message.get("content")))
    return "\n".join(lines) if lines else HINT


def _offered_tools(tools: list[ToolSpec]) -> set[str]:
    names: set[str] = set()
    for tool in tools:
        function = tool.get("function")
        spec = function if isinstance(function, dict) else tool
        if isinstance(spec.get("name"), str):
            names.add(spec["name"])
    return names


def _calls_so_far(messages: list[ChatMessage]) -> int:
    return sum(
        len(message.get("tool_calls") or [])
        for message in messages
        if message.get("role") == "assistant"
    )


def _last_user(messages: list[ChatMessage]) -> int:
    """Index of the last user message (-1 when there is none)."""
    return next(
        (i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), -1
    )


def _previous_turn(messages: list[ChatMessage]) -> list[ChatMessage]:
    """The messages of the turn before the current user message (its question excluded)."""
    current = _last_user(messages)
    previous = _last_user(messages[:current]) if current > 0 else -1
    return messages[previous + 1 : current] if previous >= 0 else []


class OfflineProvider:
    """A :class:`~agent.providers.base.ModelProvider` that needs no model at all."""

    name = MODEL_NAME

    async def complete(
        self,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        *,
        on_delta: DeltaSink | None = None,
        deadline: float | None = None,
    ) -> ModelReply:
        content = ""
        tool_calls: list[ToolCallRequest] = []
        last = messages[-1] if messages else {}
        role = last.get("role")

        if role == "user":
            text = _message_text(last)
            follow_up = answer_to(turn_steps(_previous_turn(messages)), text)
            intent = follow_up if isinstance(follow_up, tuple) else parse_intent(text)
            offered = _offered_tools(tools)
            # An empty tool list means "no filter" (callers that do not pass specs).
            if intent is not None and offered and intent[0] not in offered:
                content = f"Sorry, I can't do that right now. {HINT}"
            elif intent is not None:
                earlier = _calls_so_far(messages)
                tool, arguments = intent
                tool_calls.append(
                    ToolCallRequest(
                        id=f"call_{earlier + 1}", name=tool, arguments=json.dumps(arguments)
                    )
                )
            elif isinstance(follow_up, str):
                content = follow_up
            else:
                content = small_talk(text)
        elif role == "tool":
            step = after_results(turn_steps(messages[_last_user(messages) + 1 :]))
            if step is not None and step.call is not None:
                tool, arguments = step.call
                tool_calls.append(
                    ToolCallRequest(
                        id=f"call_{_calls_so_far(messages) + 1}",
                        name=tool,
                        arguments=json.dumps(arguments),
                    )
                )
            elif step is not None and step.question is not None:
                question = step.question
                content = ask_which(
                    question.tool,
                    str(question.arguments.get("title") or ""),
                    question.candidates,
                    exact=question.exact,
                )
            elif step is not None and step.not_found is not None:
                content = not_found(step.not_found, step.tasks)
            else:
                content = _answer_tool_results(messages)
        else:
            content = HINT

        if on_delta is not None and content:
            for piece in re.findall(r"\S+\s*|\s+", content):
                await on_delta(piece)
                await asyncio.sleep(0)

        reply = ModelReply(content=content, tool_calls=tool_calls, model=MODEL_NAME)
        # no tokenizer here: the counts are estimates, and say so
        reply.prompt_tokens = estimate_tokens(sent_chars(messages, tools))
        reply.completion_tokens = estimate_tokens(produced_chars(reply))
        reply.tokens_estimated = True
        return reply

    async def aclose(self) -> None:
        return None
