"""The turn loop: ask the model, run the tools it calls, feed the results back, until it
answers in text or the step budget runs out."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from agent.effects import fallback_call_id
from agent.providers.base import ChatMessage, DeltaSink, ModelProvider, ToolCallRequest
from agent.tools import TOOL_SPECS, ToolRuntime, run_tool
from agent.usage import TurnUsage, UsageMeter
from core.errors import AgentUnavailable

STEP_SEPARATOR = "\n\n"
ToolCallSink = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(slots=True)
class TurnOutcome:
    content: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""
    usage: TurnUsage = field(default_factory=TurnUsage)
    steps: int = 0
    model_seconds: float = 0.0
    hit_step_limit: bool = False


async def run_turn(
    provider: ModelProvider,
    messages: list[ChatMessage],
    runtime: ToolRuntime,
    *,
    max_steps: int,
    on_delta: DeltaSink | None = None,
    on_tool_call: ToolCallSink | None = None,
    deadline: float | None = None,
    meter: UsageMeter | None = None,
) -> TurnOutcome:
    """`messages` is the system prompt plus history ending with the user's message.
    The reply's text is everything the model said across steps, in order, so that a
    streamed reply and the stored one are the same text. `meter` counts what each step
    spends; the caller keeps it, so a turn cut off still knows what it spent."""
    meter = meter or UsageMeter()
    outcome = TurnOutcome(content="")
    conversation = list(messages)
    texts: list[str] = []
    used_ids: set[str] = set()
    for step in range(1, max_steps + 1):
        started = time.perf_counter()
        step_delta = _counted(meter, _separated(on_delta, needs_separator=bool(texts)))
        meter.begin_step(conversation, TOOL_SPECS)
        try:
            reply = await provider.complete(
                conversation, TOOL_SPECS, on_delta=step_delta, deadline=deadline
            )
        except AgentUnavailable:
            meter.failed()
            raise
        meter.end_step(reply)
        outcome.usage = meter.spent()
        outcome.model_seconds += time.perf_counter() - started
        outcome.steps += 1
        outcome.model = reply.model or outcome.model
        reply.tool_calls = _keyed(reply.tool_calls, step, used_ids)
        if reply.content:
            texts.append(STEP_SEPARATOR + reply.content if texts else reply.content)
        if not reply.tool_calls:
            outcome.content = "".join(texts)
            return outcome
        conversation.append(
            {
                "role": "assistant",
                "content": reply.content or None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in reply.tool_calls
                ],
            }
        )
        for call in reply.tool_calls:
            arguments, result = await run_tool(runtime, call.name, call.arguments)
            record = {
                "id": call.id,
                "name": call.name,
                "arguments": arguments,
                "result": result,
                "ok": bool(result.get("ok")),
            }
            if result.get("replayed") is True:
                record["replayed"] = True
            outcome.tool_calls.append(record)
            conversation.append(
                {"role": "tool", "tool_call_id": call.id, "content": orjson.dumps(result).decode()}
            )
            if on_tool_call is not None:
                await on_tool_call(record)
    # The model still wanted tools after its last step: end with a plain answer.
    outcome.hit_step_limit = True
    note = _step_limit_note(outcome.tool_calls)
    if texts:
        note = STEP_SEPARATOR + note
    if on_delta is not None:
        await on_delta(note)
    outcome.content = "".join([*texts, note])
    return outcome


def _keyed(calls: list[ToolCallRequest], step: int, used_ids: set[str]) -> list[ToolCallRequest]:
    """Each call's key within the turn: the model's id, or its step and position when
    the provider gave none or repeated one."""
    keyed = []
    for position, call in enumerate(calls, start=1):
        call_id = call.id if call.id and call.id not in used_ids else ""
        call_id = call_id or fallback_call_id(step, position)
        used_ids.add(call_id)
        keyed.append(
            call if call_id == call.id else ToolCallRequest(call_id, call.name, call.arguments)
        )
    return keyed


def _counted(meter: UsageMeter, on_delta: DeltaSink | None) -> DeltaSink | None:
    """Streamed text also counts as received, for an estimate if the step is cut off."""
    if on_delta is None:
        return None
    sink = on_delta

    async def forward(piece: str) -> None:
        meter.received(piece)
        await sink(piece)

    return forward


def _separated(on_delta: DeltaSink | None, *, needs_separator: bool) -> DeltaSink | None:
    """Text from a later step starts a new paragraph, in the stream as in storage."""
    if on_delta is None or not needs_separator:
        return on_delta
    sink = on_delta
    started = False

    async def forward(piece: str) -> None:
        nonlocal started
        if not started:
            started = True
            await sink(STEP_SEPARATOR)
        await sink(piece)

    return forward


def _step_limit_note(tool_calls: list[dict[str, Any]]) -> str:
    done = sum(1 for record in tool_calls if record["ok"])
    return (
        f"I stopped after too many steps ({len(tool_calls)} tool calls, {done} succeeded). "
        "Please check your tasks and tell me what is still missing."
    )
