"""Tool effects, applied exactly once, and the provenance they leave.

Every tool execution has a key: its reply and the model's tool-call id (or `s<step>.<n>`,
its step and position, when the provider gave none or repeated one). The effects of a
turn commit together with its reply (one unit of work, `agent/turn.py`), so a crash
before that commit leaves nothing and one after it leaves the whole reply, which a
retried send (`clientMessageId`) returns instead of running the turn again.

A question answered again (a regenerated reply, or a retry whose first reply is gone)
runs the model again, and the model asks for the same changes again under new ids. The
`EffectLedger` holds what earlier replies to the same question already applied: a
changing call whose tool and arguments match one of those is not run again; its result
is the earlier one, marked `"replayed": true`, so the new reply says what had happened.
Each earlier execution answers at most one call, so a reply that adds the same task
twice on purpose still adds it twice the first time and replays both the next.
"""

from __future__ import annotations

import uuid
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

import orjson

from core.errors import BadUserInput
from core.ids import parse_global_id
from db.models import EffectKind
from services.provenance import TaskChange

#: the tools that change tasks; reading ones always run
CHANGING_TOOLS: dict[str, EffectKind | None] = {
    "add_task": EffectKind.CREATED,
    "complete_task": EffectKind.COMPLETED,
    "update_task": EffectKind.UPDATED,
    "delete_task": None,  # the task is gone: nothing to point at
}


def fallback_call_id(step: int, position: int) -> str:
    return f"s{step}.{position}"


def _canonical(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def _effect_key(name: str, arguments: Any) -> bytes:
    return orjson.dumps([name, _canonical(arguments)], option=orjson.OPT_SORT_KEYS)


class EffectLedger:
    """The changes earlier replies to one question applied, to be replayed, not redone."""

    def __init__(self, earlier_calls: Iterable[dict[str, Any]] = ()) -> None:
        self._applied: defaultdict[bytes, deque[dict[str, Any]]] = defaultdict(deque)
        for record in earlier_calls:
            name = str(record.get("name", ""))
            if name in CHANGING_TOOLS and record.get("ok") and not record.get("replayed"):
                self._applied[_effect_key(name, record.get("arguments"))].append(record)

    def take(self, name: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
        """The earlier result of this change, if one is still unclaimed."""
        if name not in CHANGING_TOOLS:
            return None
        queue = self._applied.get(_effect_key(name, arguments))
        if not queue:
            return None
        earlier = queue.popleft()
        result = earlier.get("result")
        return {**(result if isinstance(result, dict) else {}), "replayed": True}


def effects_of(tool_calls: list[dict[str, Any]]) -> list[TaskChange]:
    """The tasks a reply's tool calls created or changed (replayed calls included: the
    reply reports them), in call order."""
    effects: list[TaskChange] = []
    for position, record in enumerate(tool_calls):
        kind = CHANGING_TOOLS.get(str(record.get("name", "")))
        result = record.get("result")
        if kind is None or not record.get("ok") or not isinstance(result, dict):
            continue
        task = result.get("task")
        task_id = _task_row_id(task.get("id") if isinstance(task, dict) else None)
        if task_id is not None:
            effects.append(TaskChange(str(record["id"]), position, task_id, kind))
    return effects


def _task_row_id(global_id: object) -> uuid.UUID | None:
    if not isinstance(global_id, str):
        return None
    try:
        type_name, row_id = parse_global_id(global_id)
    except BadUserInput:
        return None
    return row_id if type_name == "Task" else None
