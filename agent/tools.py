"""The tools the model may call. Each acts on the bound user's tasks only, through the
same service functions as the GraphQL mutations.

The user is bound by the server (`ToolRuntime`), never read from arguments. Arguments
are validated strictly: unknown ones are refused, so a model cannot smuggle in a
`user_id`. A mistake the model can correct (bad arguments, an unknown or ambiguous
task, invalid input) becomes `{"ok": false, "error": ...}` for the model to read; any
other failure (the database, a bug) ends the turn, whose unit of work then rolls back.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from agent.effects import CHANGING_TOOLS, EffectLedger
from core.errors import BadUserInput, NotFound
from core.ids import parse_global_id, to_global_id
from core.metrics import TOOL_CALLS
from db.models import Task, TaskStatus
from db.transactions import UnitOfWork
from services import tasks as task_service
from services.validation import TASK_TITLE_MAX, clean_text

LIST_LIMIT = 50
ToolResult = dict[str, Any]


class ToolError(Exception):
    """A problem the model should hear about and may correct. ``details`` go into the
    result beside the error (e.g. the candidates of an ambiguous title)."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


@dataclass(slots=True)
class ToolRuntime:
    """What a tool acts with: the turn's unit of work (it opens at the first tool call, so
    nothing is locked while the model thinks before it), the user the server bound, and
    the changes earlier replies to the same question applied (replayed, not redone)."""

    work: UnitOfWork
    user_id: uuid.UUID
    ledger: EffectLedger = field(default_factory=EffectLedger)


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[AsyncSession, uuid.UUID, dict[str, Any]], Awaitable[ToolResult]]

    @property
    def spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def task_view(task: Task) -> dict[str, Any]:
    return {
        "id": to_global_id("Task", task.id),
        "title": task.title,
        "description": task.description,
        "status": task.status.value,
    }


# --- argument checks -------------------------------------------------------------------


def _check_arguments(arguments: dict[str, Any], schema: dict[str, Any]) -> None:
    allowed = schema["properties"]
    unknown = sorted(set(arguments) - set(allowed))
    if unknown:
        raise ToolError(f"unexpected argument(s): {', '.join(unknown)}")
    for name in schema.get("required", []):
        if arguments.get(name) is None:
            raise ToolError(f"missing argument: {name}")
    for name, value in arguments.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise ToolError(f"argument {name} must be a string")
        choices = allowed[name].get("enum")
        if choices is not None and value not in choices:
            raise ToolError(f"argument {name} must be one of {', '.join(choices)}")


def _task_id(value: str) -> uuid.UUID:
    """A task id as the tools show it (a global id), or a bare UUID."""
    try:
        return uuid.UUID(value)
    except ValueError:
        pass
    try:
        type_name, row_id = parse_global_id(value)
    except BadUserInput:
        raise ToolError(f"not a task id: {value}") from None
    if type_name != "Task":
        raise ToolError(f"not a task id: {value}")
    return row_id


async def _find_task(
    session: AsyncSession, user_id: uuid.UUID, task_id: str | None, title: str | None
) -> Task:
    if task_id:
        task = await task_service.get_task(session, user_id, _task_id(task_id))
        if task is None:
            raise ToolError(f"no task with id {task_id}")
        return task
    if not title or not title.strip():
        raise ToolError("name the task by task_id or title")
    title = clean_text(title, "title", TASK_TITLE_MAX)
    matches = await task_service.tasks_titled(session, user_id, title)
    if not matches:
        raise ToolError(f'no task titled "{title}"', missing=True)
    if len(matches) > 1:
        candidates = "; ".join(
            f'{to_global_id("Task", t.id)} "{t.title}" ({t.status.value})' for t in matches
        )
        raise ToolError(
            f'{len(matches)} tasks are titled "{title}"; '
            f"call again with task_id, one of: {candidates}",
            candidates=[task_view(t) for t in matches],
        )
    return matches[0]


# --- the tools -----------------------------------------------------------------------------

_TASK_REF = {
    "task_id": {"type": "string", "description": "The task's id, as list_tasks shows it."},
    "title": {"type": "string", "description": "The task's current title (case-insensitive)."},
}


async def _add_task(session: AsyncSession, user_id: uuid.UUID, args: dict[str, Any]) -> ToolResult:
    task = await task_service.create_task(session, user_id, args["title"], args.get("description"))
    return {"ok": True, "task": task_view(task)}


async def _list_tasks(
    session: AsyncSession, user_id: uuid.UUID, args: dict[str, Any]
) -> ToolResult:
    status = TaskStatus(args["status"]) if args.get("status") else None
    tasks = await task_service.oldest_tasks(session, user_id, status, LIST_LIMIT + 1)
    return {
        "ok": True,
        "status": status.value if status else None,
        "tasks": [task_view(task) for task in tasks[:LIST_LIMIT]],
        "truncated": len(tasks) > LIST_LIMIT,
    }


async def _complete_task(
    session: AsyncSession, user_id: uuid.UUID, args: dict[str, Any]
) -> ToolResult:
    task = await _find_task(session, user_id, args.get("task_id"), args.get("title"))
    task = await task_service.set_task_status(session, user_id, task.id, TaskStatus.COMPLETED)
    return {"ok": True, "task": task_view(task)}


async def _update_task(
    session: AsyncSession, user_id: uuid.UUID, args: dict[str, Any]
) -> ToolResult:
    new_title = args.get("new_title")
    if args.get("task_id") and args.get("title") and new_title is None:
        # update_task(task_id, title=...) reads as a rename, as in API.md
        new_title, lookup_title = args["title"], None
    else:
        lookup_title = args.get("title")
    if new_title is None and args.get("description") is None:
        raise ToolError("nothing to change: pass new_title and/or description")
    task = await _find_task(session, user_id, args.get("task_id"), lookup_title)
    previous_title = task.title
    task = await task_service.update_task(
        session,
        user_id,
        task.id,
        title=new_title,
        description=args.get("description"),
    )
    return {"ok": True, "task": task_view(task), "previous_title": previous_title}


async def _delete_task(
    session: AsyncSession, user_id: uuid.UUID, args: dict[str, Any]
) -> ToolResult:
    task = await _find_task(session, user_id, args.get("task_id"), args.get("title"))
    await task_service.delete_task(session, user_id, task.id)
    return {"ok": True, "deleted": {"id": to_global_id("Task", task.id), "title": task.title}}


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "add_task",
            "Add a task to the user's list.",
            {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "description": "What to do, briefly."},
                    "description": {"type": "string", "description": "Optional details."},
                },
                "required": ["title"],
            },
            _add_task,
        ),
        Tool(
            "list_tasks",
            "List the user's tasks, oldest first; optionally only pending or completed ones.",
            {
                "type": "object",
                "properties": {"status": {"type": "string", "enum": ["PENDING", "COMPLETED"]}},
            },
            _list_tasks,
        ),
        Tool(
            "complete_task",
            "Mark one of the user's tasks as done. Name it by task_id or by title.",
            {"type": "object", "properties": dict(_TASK_REF)},
            _complete_task,
        ),
        Tool(
            "update_task",
            "Rename a task or change its description. Name it by task_id or by its current title.",
            {
                "type": "object",
                "properties": {
                    **_TASK_REF,
                    "new_title": {"type": "string", "description": "The new title."},
                    "description": {
                        "type": "string",
                        "description": "The new description; empty to clear it.",
                    },
                },
            },
            _update_task,
        ),
        Tool(
            "delete_task",
            "Delete one of the user's tasks. Name it by task_id or by title.",
            {"type": "object", "properties": dict(_TASK_REF)},
            _delete_task,
        ),
    )
}

TOOL_SPECS = [tool.spec for tool in TOOLS.values()]


def parse_arguments(raw: str) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ToolError("arguments are not valid JSON") from None
    if not isinstance(parsed, dict):
        raise ToolError("arguments must be a JSON object")
    return parsed


async def run_tool(runtime: ToolRuntime, name: str, raw_arguments: str) -> tuple[Any, ToolResult]:
    """Runs one call (a changing one in a savepoint); returns (arguments as recorded,
    result). A change an earlier reply to the same question already applied is not run
    again: its result is the earlier one, marked `"replayed": true`."""
    # the model names the tool: only registered names become a metric label
    tool = name if name in TOOLS else "unknown"
    try:
        recorded, result = await _run_tool(runtime, name, raw_arguments)
    except Exception:
        TOOL_CALLS.labels(tool, "failed").inc()
        raise
    TOOL_CALLS.labels(tool, "ok" if result.get("ok") else "error").inc()
    return recorded, result


async def _run_tool(runtime: ToolRuntime, name: str, raw_arguments: str) -> tuple[Any, ToolResult]:
    recorded: Any = raw_arguments
    try:
        tool = TOOLS.get(name)
        if tool is None:
            raise ToolError(f"unknown tool: {name}; available: {', '.join(TOOLS)}")
        arguments = parse_arguments(raw_arguments)
        recorded = arguments
        _check_arguments(arguments, tool.parameters)
        earlier = runtime.ledger.take(name, arguments)
        if earlier is not None:
            return recorded, earlier
        if name not in CHANGING_TOOLS:
            # a read leaves nothing to undo: no savepoint (two round trips) around it
            return recorded, await tool.run(
                await runtime.work.session(), runtime.user_id, arguments
            )
        async with runtime.work.savepoint() as session:
            return recorded, await tool.run(session, runtime.user_id, arguments)
    except ToolError as error:
        return recorded, {"ok": False, "error": str(error), **error.details}
    except (BadUserInput, NotFound) as error:
        return recorded, {"ok": False, "error": error.message}
