"""How the offline agent words its replies: small talk, and what a tool result says."""

from __future__ import annotations

import json
from typing import Any

from agent.providers.offline.grammar import whole

__all__ = ["HINT", "ask_which", "describe_result", "not_found", "small_talk"]

HINT = (
    "I can help you manage your tasks. Try "
    '"add a task to buy milk", "list my tasks", "complete buy milk", '
    '"rename buy milk to buy oat milk" or "delete buy milk".'
)

_GREETING = whole(
    r"(?:hi|hello|hey|hiya|howdy|yo|greetings|good (?:morning|afternoon|evening))"
    r"(?: there)?[\s!.,]*"
)
_THANKS = whole(
    r"(?:ok(?:ay)?,? )?(?:thanks|thank you|thx|ty|cheers)(?: (?:a lot|so much))?[\s!.,]*"
)
_HELP = whole(r"(?:help|what can you do|how does this work|what do you do)[\s!.?]*")


def small_talk(text: str) -> str:
    text = " ".join(text.split())
    if _GREETING.match(text):
        return f"Hello! {HINT}"
    if _THANKS.match(text):
        return f"You're welcome! {HINT}"
    if _HELP.match(text):
        return HINT
    return f"Sorry, I didn't understand that. {HINT}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _title_of(task: Any, fallback: str = "the task") -> str:
    if isinstance(task, dict) and isinstance(task.get("title"), str):
        return str(task["title"])
    return fallback


def _describe_list(result: dict[str, Any], args: dict[str, Any]) -> str:
    raw_tasks = result.get("tasks")
    tasks = raw_tasks if isinstance(raw_tasks, list) else []
    status = result.get("status", args.get("status"))
    if status == "PENDING":
        if not tasks:
            return "You have no pending tasks."
        header = f"You have {_plural(len(tasks), 'pending task')}:"
    elif status == "COMPLETED":
        if not tasks:
            return "You have no completed tasks."
        header = f"You have completed {_plural(len(tasks), 'task')}:"
    else:
        if not tasks:
            return "You have no tasks."
        header = f"You have {_plural(len(tasks), 'task')}:"
    lines = [header]
    for number, task in enumerate(tasks, start=1):
        done = status is None and isinstance(task, dict) and task.get("status") == "COMPLETED"
        lines.append(f"{number}. {_title_of(task)}{' (done)' if done else ''}")
    return "\n".join(lines)


def _describe_update(result: dict[str, Any], args: dict[str, Any]) -> str:
    title = _title_of(
        result.get("task"), str(args.get("new_title") or args.get("title") or "the task")
    )
    previous = result.get("previous_title")
    if not isinstance(previous, str) and "new_title" in args:
        previous = args.get("title")
    if isinstance(previous, str) and previous != title:
        return f'Renamed "{previous}" to "{title}".'
    return f'Updated "{title}".'


def _guess_tool(result: dict[str, Any]) -> str:
    """Which tool produced ``result``, for a tool message whose call id we cannot find."""
    if "tasks" in result:
        return "list_tasks"
    if "deleted" in result:
        return "delete_task"
    if "previous_title" in result:
        return "update_task"
    task = result.get("task")
    if isinstance(task, dict) and task.get("status") == "COMPLETED":
        return "complete_task"
    return "add_task"


def describe_result(name: str | None, args: dict[str, Any], content: Any) -> str:
    try:
        result = json.loads(content) if isinstance(content, str) else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        return "Sorry, I couldn't read the result of that action."
    if result.get("ok") is not True:
        error = result.get("error")
        return f"Sorry, I couldn't do that: {error}" if error else "Sorry, I couldn't do that."

    tool = name or _guess_tool(result)
    if tool == "list_tasks":
        return _describe_list(result, args)
    if tool == "update_task":
        return _describe_update(result, args)
    if tool == "add_task":
        title = _title_of(result.get("task"), str(args.get("title", "the task")))
        return f'Added "{title}" to your tasks.'
    if tool == "complete_task":
        title = _title_of(result.get("task"), str(args.get("title", "the task")))
        return f'Marked "{title}" as done.'
    if tool == "delete_task":
        title = _title_of(result.get("deleted"), str(args.get("title", "the task")))
        return f'Deleted "{title}".'
    return "Done."


_DOING = {"complete_task": "mark as done", "update_task": "change", "delete_task": "delete"}


def ask_which(tool: str, reference: str, candidates: list[dict[str, Any]], *, exact: bool) -> str:
    """A question listing the tasks a reference may mean."""
    doing = _DOING.get(tool, "use")
    if len(candidates) == 1:
        title = _title_of(candidates[0])
        return f'Do you mean "{title}"? Say "yes" to {doing} it, or tell me which task.'
    if exact:
        header = f'{len(candidates)} tasks are called "{reference}". Which one should I {doing}?'
    else:
        header = f'Several tasks match "{reference}". Which one should I {doing}?'
    lines = [header]
    for number, task in enumerate(candidates, start=1):
        done = isinstance(task, dict) and task.get("status") == "COMPLETED"
        lines.append(f"{number}. {_title_of(task)}{' (done)' if done else ''}")
    lines.append('Answer with its number (like "the second one") or its exact title.')
    return "\n".join(lines)


def not_found(reference: str, tasks: list[dict[str, Any]]) -> str:
    """No task matches a reference, even loosely."""
    if not tasks:
        return f'I couldn\'t find a task matching "{reference}": you have no tasks.'
    titles = ", ".join(f'"{_title_of(task)}"' for task in tasks[:10])
    return f'I couldn\'t find a task matching "{reference}". Your tasks: {titles}.'
