"""Which task a reference means, and what to do when it is not clear.

A reference ("complete the report") is first tried as a title by the tool itself. When
no task has that title, the agent lists the tasks and matches the reference loosely
(words in any order, plural or past forms, one typo): one match is acted on, except by
a delete, which never acts on a guess; several matches, or a delete's one, become a
question listing the candidates. The answer to that question ("the second one", "yes",
the exact title) is read in the next message, from the question's turn in the history.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from agent.providers.base import ChatMessage
from agent.providers.offline.grammar import near

__all__ = ["Next", "Question", "after_results", "answer_to", "turn_steps"]

REFERENCE_TOOLS = frozenset({"complete_task", "update_task", "delete_task"})
Step = tuple[str, dict[str, Any], dict[str, Any] | None]
_STOP_WORDS = frozenset({"the", "my", "a", "an", "task", "todo", "to-do", "item", "that", "this"})


@dataclass(slots=True)
class Question:
    """Asked of the user: which of ``candidates`` should ``tool`` act on."""

    tool: str
    arguments: dict[str, Any]
    candidates: list[dict[str, Any]]
    exact: bool  # the candidates share the title as typed (the tool found several)


@dataclass(slots=True)
class Next:
    """What the agent does after a step: call a tool, or ask."""

    call: tuple[str, dict[str, Any]] | None = None
    question: Question | None = None
    not_found: str | None = None
    tasks: list[dict[str, Any]] = field(default_factory=list)


def _result(content: Any) -> dict[str, Any] | None:
    try:
        value = json.loads(content) if isinstance(content, str) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def turn_steps(messages: list[ChatMessage]) -> list[Step]:
    """``(tool, arguments, result)`` of each tool call in ``messages``, in order."""
    steps: list[Step] = []
    index: dict[str, int] = {}
    for message in messages:
        if message.get("role") == "assistant":
            for call in message.get("tool_calls") or []:
                if not isinstance(call, dict):
                    continue
                function = call.get("function")
                spec: dict[str, Any] = function if isinstance(function, dict) else call
                try:
                    args = json.loads(spec.get("arguments") or "{}")
                except (TypeError, ValueError):
                    args = {}
                index[str(call.get("id", ""))] = len(steps)
                steps.append(
                    (str(spec.get("name", "")), args if isinstance(args, dict) else {}, None)
                )
        elif message.get("role") == "tool":
            position = index.get(str(message.get("tool_call_id")))
            if position is not None:
                name, args, _ = steps[position]
                steps[position] = (name, args, _result(message.get("content")))
    return steps


def _stem(word: str) -> str:
    for suffix in ("'s", "ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _words(text: str) -> list[str]:
    words = re.findall(r"[\w'-]+", text.casefold())
    return [_stem(w) for w in words if w not in _STOP_WORDS]


def _same_word(a: str, b: str) -> bool:
    return a == b or (len(a) >= 4 and near(a, b, substitute=len(a) >= 5))


def matches(reference: str, tasks: list[dict[str, Any]], tool: str) -> list[dict[str, Any]]:
    """The tasks ``reference`` may mean: every word of it is in the title (loosely)."""
    wanted = _words(reference)
    if not wanted:
        return []
    found = [
        task
        for task in tasks
        if all(any(_same_word(w, t) for t in _words(str(task.get("title", "")))) for w in wanted)
    ]
    if tool == "complete_task":
        pending = [task for task in found if task.get("status") != "COMPLETED"]
        found = pending or found
    return found


def _acting_arguments(arguments: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    rest = {k: v for k, v in arguments.items() if k not in ("title", "task_id")}
    return {"task_id": task.get("id"), **rest}


def after_results(steps: list[Step]) -> Next | None:
    """What to do after this turn's steps so far; ``None``: answer from the results."""
    if not steps:
        return None
    name, arguments, result = steps[-1]
    if result is None:
        return None
    if name in REFERENCE_TOOLS and result.get("ok") is False:
        candidates = result.get("candidates")
        if isinstance(candidates, list) and candidates:
            return Next(question=Question(name, arguments, candidates, exact=True))
        if result.get("missing") is True and not any(s[0] == "list_tasks" for s in steps):
            return Next(call=("list_tasks", {}))
        return None
    if name == "list_tasks" and result.get("ok") is True and len(steps) >= 2:
        ref_name, ref_arguments, ref_result = steps[-2]
        if (
            ref_name not in REFERENCE_TOOLS
            or not ref_result
            or ref_result.get("missing") is not True
        ):
            return None
        raw_tasks = result.get("tasks")
        tasks = [t for t in raw_tasks if isinstance(t, dict)] if isinstance(raw_tasks, list) else []
        reference = str(ref_arguments.get("title") or "")
        found = matches(reference, tasks, ref_name)
        if not found:
            return Next(not_found=reference, tasks=tasks)
        if len(found) == 1 and ref_name != "delete_task":
            return Next(call=(ref_name, _acting_arguments(ref_arguments, found[0])))
        return Next(question=Question(ref_name, ref_arguments, found, exact=False))
    return None


_ORDINALS = {
    "first": 0, "1st": 0, "one": 0, "1": 0,
    "second": 1, "2nd": 1, "two": 1, "2": 1,
    "third": 2, "3rd": 2, "three": 2, "3": 2,
    "fourth": 3, "4th": 3, "four": 3, "4": 3,
    "fifth": 4, "5th": 4, "five": 4, "5": 4,
}  # fmt: skip
_YES = re.compile(
    r"^(?:yes|yeah|yep|yup|sure|ok(?:ay)?|correct|right|please do|do it|go ahead|that one"
    r"|yes please|y)\b",
    re.IGNORECASE,
)
_NO = re.compile(r"^(?:no|nope|neither|none|cancel|never ?mind|stop|don'?t)\b", re.IGNORECASE)


def _choice(text: str, question: Question) -> int | None:
    """Which candidate an answer picks, or ``None`` when it picks none."""
    plain = re.sub(r"[.!?\"'\u201c\u201d]", "", text.casefold()).strip()
    count = len(question.candidates)
    for index, task in enumerate(question.candidates):
        title = str(task.get("title", "")).casefold()
        if plain in (title, f"the {title}") and not question.exact:
            return index
    words = plain.replace("#", " ").split()
    if "last" in words and count > 1:
        return count - 1
    ordinals = [_ORDINALS[w] for w in words if w in _ORDINALS and w != "one"]
    if not ordinals and "one" in words and (len(words) == 1 or words[0] == "number"):
        ordinals = [0]  # "one", "number one"; not "that one"
    if ordinals and ordinals[0] < count:
        return ordinals[0]
    if count == 1 and _YES.match(plain):
        return 0
    return None


def answer_to(previous_turn: list[Step], text: str) -> tuple[str, dict[str, Any]] | str | None:
    """When the previous turn asked a question, what this answer to it means: a tool call,
    a short reply (the user declined), or ``None`` (not an answer: read it afresh)."""
    pending = after_results(previous_turn)
    if pending is None or pending.question is None:
        return None
    question = pending.question
    choice = _choice(text, question)
    if choice is not None:
        task = question.candidates[choice]
        return question.tool, _acting_arguments(question.arguments, task)
    if _NO.match(text.strip()):
        return "OK, I left your tasks as they are."
    return None
