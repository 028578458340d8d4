"""A deterministic, offline stand-in for a chat model that manages tasks.

It understands a fixed set of English phrasings ("add a task to buy milk", "list my
tasks", "mark buy milk as done", ...) and turns them into exactly one tool call; once the
tool results come back it words the answer from them. No network, no randomness, no
clock: the same messages always give the same reply, which makes it the provider for
tests, demos and running without an API key.

Tool arguments it produces:

* ``add_task``      ``{"title": str, "description"?: str}``
* ``list_tasks``    ``{}`` or ``{"status": "PENDING" | "COMPLETED"}``
* ``complete_task`` ``{"title": str}``
* ``update_task``   ``{"title": str, "new_title"?: str, "description"?: str}``
* ``delete_task``   ``{"title": str}``

``title`` names an existing task (as typed) everywhere except ``add_task``, where it is
the title to store; ``new_title`` is a rename's new title.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from agent.providers.base import (
    ChatMessage,
    DeltaSink,
    ModelReply,
    ToolCallRequest,
    ToolSpec,
)

__all__ = ["HINT", "OfflineProvider", "parse_intent"]

MODEL_NAME = "offline"

HINT = (
    "I can help you manage your tasks. Try "
    '"add a task to buy milk", "list my tasks", "complete buy milk", '
    '"rename buy milk to buy oat milk" or "delete buy milk".'
)

Intent = tuple[str, dict[str, str]]
_Builder = Callable[[re.Match[str]], Intent | None]

# --------------------------------------------------------------------------- parsing

_NOUN = r"(?:task|to-?do|item|reminder)"
_NOUNS = _NOUN + r"s?"
_APOS = r"['\u2019]"  # users type curly apostrophes too
_PENDING_WORDS = r"pending|open|remaining|incomplete|unfinished|outstanding|active|current"
# Not "complete": "complete task" is a (titleless) command, not "completed tasks".
_COMPLETED_WORDS = r"completed|done|finished|closed|checked off"
# "my list", "the list", "my tasks", "my to-do list", "my todos"
_MY_LIST = rf"(?:my |the )?(?:{_NOUN} )?(?:list|{_NOUNS})"
_ARTICLE = r"(?:the|my|a|an|this|that)"


def _p(pattern: str) -> re.Pattern[str]:
    """A whole-text, case-insensitive pattern."""
    return re.compile(rf"^(?:{pattern})$", re.IGNORECASE)


_LEADING_FILLER = _p(
    rf"(?:please|pls|kindly|hey|hi|hello|ok|okay|so|and|also|now|go ahead and|let{_APOS}s"
    rf"|(?:can|could|would|will) you|i(?:{_APOS}d| would) like (?:you )?to|i want (?:you )?to)"
    r"[,!]?\s+(?P<rest>.+)"
)
# "thanks" only after a comma: "remind me to send thanks" must keep its last word.
_TRAILING_FILLER = _p(r"(?P<rest>.+?)(?:[\s,]+(?:please|pls)|,\s*(?:thanks|thank you|thx))")
_TRAILING_PUNCT = re.compile(r"[\s.!?,;:]+$")

_QUOTE_PAIRS = {
    '"': '"',
    "'": "'",
    "\u201c": "\u201d",
    "\u2018": "\u2019",
    "\u00ab": "\u00bb",
    "`": "`",
}

# "the task buy milk", "task: buy milk", "todo buy milk", "my todo called buy milk".
# A bare plural or "item"/"reminder" is left alone: "Items to pack" is a real title.
_TITLE_PREFIX = re.compile(
    rf"^(?:{_ARTICLE}\s+{_NOUNS}\b|{_NOUNS}\s*(?=:)|(?:task|to-?do)\b)"
    r"(?:\s+(?:called|named|titled))?\s*:?\s*",
    re.IGNORECASE,
)
_AFTER_ARTICLE = _p(rf"{_ARTICLE}\s+(?P<title>.+)")
# "the buy milk task" -> "buy milk"; only with the article, so "Write task" stays intact
_TITLE_SUFFIX = _p(rf"(?:the|my)\s+(?P<title>.+?)\s+{_NOUN}")
# References we cannot resolve ("delete it", "delete all tasks") and no title at all.
_NOT_A_TITLE = _p(
    rf"(?:{_ARTICLE} )?(?:{_NOUNS}|(?:{_NOUN} )?list)"
    rf"|it|this|that|this one|that one|them|everything|all(?: of)?(?: my| the)?(?: {_NOUNS})?"
)

_DESCRIPTION_SUFFIXES = (
    _p(
        r"(?P<core>.+?)\s*\((?:description|desc|details|notes?)\s*[:\-]?\s*"
        r"(?P<description>[^()]+)\)"
    ),
    _p(
        r"(?P<core>.+?),?\s+with (?:the |a )?(?:description|details|notes?)\s*[:\-]?\s*"
        r"(?P<description>.+)"
    ),
)


def _strip_quotes(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
        return text[1:-1].strip()
    return text


def _clean_title(raw: str) -> str | None:
    """Strip trailing punctuation and "the task"-style wrappers from a title.

    A quoted title is taken verbatim (minus the quotes), so users can quote a title that
    looks like one of the wrappers.
    """
    title = raw.strip()
    while True:
        title = _TRAILING_PUNCT.sub("", title)
        after_article = _AFTER_ARTICLE.match(title)
        if after_article and _strip_quotes(after_article["title"]) != after_article["title"]:
            title = after_article["title"]  # 'the "Task force"'
        unquoted = _strip_quotes(title)
        if unquoted != title:
            return unquoted or None
        before = title
        suffix = _TITLE_SUFFIX.match(title)
        if suffix:
            title = suffix["title"]
        title = _TITLE_PREFIX.sub("", title, count=1) or title  # keep "task" to reject it
        if title == before:
            break
    if not title or _NOT_A_TITLE.match(title):
        return None
    return title


def _add(match: re.Match[str]) -> Intent | None:
    title = _clean_title(match["title"])
    return ("add_task", {"title": title}) if title else None


def _list(status: str | None) -> _Builder:
    def build(_: re.Match[str]) -> Intent:
        return ("list_tasks", {"status": status} if status else {})

    return build


def _list_by_word(match: re.Match[str]) -> Intent:
    word = (match["status"] or "").lower()
    if not word:
        return ("list_tasks", {})
    if re.fullmatch(_COMPLETED_WORDS, word):
        return ("list_tasks", {"status": "COMPLETED"})
    return ("list_tasks", {"status": "PENDING"})


def _on_task(tool: str) -> _Builder:
    def build(match: re.Match[str]) -> Intent | None:
        task = _clean_title(match["task"])
        return (tool, {"title": task}) if task else None

    return build


def _rename(match: re.Match[str]) -> Intent | None:
    task = _clean_title(match["task"])
    title = _clean_title(match["title"])
    if not task or not title:
        return None
    return ("update_task", {"title": task, "new_title": title})


def _redescribe(match: re.Match[str]) -> Intent | None:
    task = _clean_title(match["task"])
    description = _strip_quotes(match["description"])
    if not task or not description:
        return None
    return ("update_task", {"title": task, "description": description})


_VERB_LIST = r"(?:(?:list|show|display|view|see|get|give|tell|read)(?: me)?(?: out)? )"
_VERB_ADD = r"(?:add|create|make|new|save|start)"
_VERB_COMPLETE = r"(?:complete|finish|close|tick off|check off|cross off|mark off)"
_VERB_RENAME = r"(?:rename|change|update|edit|retitle)"
_VERB_DELETE = r"(?:delete|remove|cancel|drop|erase|scrap|trash|get rid of)"

# First match wins, so the order matters where phrasings overlap: listing before the rest
# ("show completed tasks" is not about completing), "add X to my list" before the plain
# "add X", and quoted renames before unquoted ones.
_INTENTS: list[tuple[re.Pattern[str], _Builder]] = [
    # ---- list_tasks
    (
        _p(
            rf"{_VERB_LIST}?(?:all )?(?:of )?(?:my |the )?"
            rf"(?:(?P<status>{_PENDING_WORDS}|{_COMPLETED_WORDS}) )?(?:{_NOUNS}|(?:{_NOUN} )?list)"
        ),
        _list_by_word,
    ),
    (
        _p(
            rf"(?:what|which) (?:{_NOUNS} )?(?:have|did) i (?:already )?"
            r"(?:completed?|finish(?:ed)?|done|get done|got done|check(?:ed)? off)(?: so far)?"
        ),
        _list("COMPLETED"),
    ),
    (
        _p(rf"(?:what|which) {_NOUNS} (?:are|have been|were) (?:{_COMPLETED_WORDS})"),
        _list("COMPLETED"),
    ),
    (
        _p(r"what (?:do|else do) i (?:still )?(?:have|need|got) to do(?: today)?"),
        _list("PENDING"),
    ),
    (
        _p(rf"what(?:{_APOS}s| is| are) (?:still )?(?:left|pending|remaining|open)(?: to do)?"),
        _list("PENDING"),
    ),
    (
        _p(rf"(?:what|which) {_NOUNS} (?:are|is) (?:still )?(?:{_PENDING_WORDS}|left)"),
        _list("PENDING"),
    ),
    (
        _p(rf"what(?:{_APOS}s| is| are)(?: on)? (?:my|the) (?:{_NOUNS}|(?:{_NOUN} )?list)"),
        _list(None),
    ),
    (
        _p(rf"(?:what {_NOUNS} do i have|do i have any {_NOUNS}|how many {_NOUNS} do i have)"),
        _list(None),
    ),
    # ---- add_task
    (_p(rf"(?:add|put) (?P<title>.+?) (?:to|on|onto|in) {_MY_LIST}"), _add),
    (
        # "add a task to buy milk": the "to" belongs to the phrase, not the title
        _p(
            rf"{_VERB_ADD}(?: a| an| another| one)?(?: new)? {_NOUN}\b"
            r"(?: (?:called|named|titled|saying|that says))?\s*[:\-\u2013]?\s*"
            r"(?:(?:to|for) )?(?P<title>.+)"
        ),
        _add,
    ),
    (_p(rf"(?:remind me to|don{_APOS}t let me forget to) (?P<title>.+)"), _add),
    (_p(r"add (?P<title>.+)"), _add),
    # ---- update_task
    (
        _p(
            rf"{_VERB_RENAME}(?: the)? description (?:of|for|on) (?P<task>.+?) to "
            r"(?P<description>.+)"
        ),
        _redescribe,
    ),
    (
        _p(rf"{_VERB_RENAME}(?: the)? (?:title|name) of (?P<task>.+?) to (?P<title>.+)"),
        _rename,
    ),
    (
        # Quoted titles may themselves contain " to ", so split on the closing quote.
        _p(
            rf"{_VERB_RENAME}(?: the)?(?: {_NOUN})? [\"\u201c](?P<task>[^\"\u201d]+)[\"\u201d] "
            r"(?:to|into|as) (?P<title>.+)"
        ),
        _rename,
    ),
    # Unquoted, the first " to " separates old from new title.
    (_p(rf"{_VERB_RENAME} (?P<task>.+?) (?:to|into) (?P<title>.+)"), _rename),
    # ---- complete_task
    (_p(rf"mark (?P<task>.+?)(?: as)? (?:complete|{_COMPLETED_WORDS})"), _on_task("complete_task")),
    (_p(r"(?:tick|check|cross|mark) (?P<task>.+?) off"), _on_task("complete_task")),
    (
        _p(rf"i(?:{_APOS}ve| have)? (?:just )?(?:finished|completed|done|did) (?P<task>.+)"),
        _on_task("complete_task"),
    ),
    (
        _p(rf"(?:i{_APOS}m |i am )?(?:done|finished) with (?P<task>.+)"),
        _on_task("complete_task"),
    ),
    (_p(rf"{_VERB_COMPLETE} (?P<task>.+)"), _on_task("complete_task")),
    # ---- delete_task
    (
        _p(rf"{_VERB_DELETE} (?P<task>.+?)(?: (?:from|off) {_MY_LIST})?"),
        _on_task("delete_task"),
    ),
]


def _normalise(text: str) -> str:
    """Collapse whitespace and peel off politeness and trailing punctuation."""
    text = " ".join(text.split())
    while True:
        before = text
        text = _TRAILING_PUNCT.sub("", text)
        trailing = _TRAILING_FILLER.match(text)
        if trailing:
            text = trailing["rest"]
        leading = _LEADING_FILLER.match(text)
        if leading:
            text = leading["rest"]
        if text == before:
            return text


def _match(text: str) -> Intent | None:
    for pattern, build in _INTENTS:
        match = pattern.match(text)
        if match:
            intent = build(match)
            if intent is not None:
                return intent
    return None


def parse_intent(text: str) -> Intent | None:
    """Turn a user message into ``(tool_name, arguments)``, or ``None`` if not understood."""
    text = _normalise(text)
    if not text:
        return None
    # "... with description Y" / "... (description: Y)" only makes sense when adding or
    # editing; for anything else the text is matched as written.
    for suffix in _DESCRIPTION_SUFFIXES:
        split = suffix.match(text)
        if not split:
            continue
        description = _strip_quotes(split["description"])
        intent = _match(split["core"])
        if description and intent and intent[0] in {"add_task", "update_task"}:
            return intent[0], {**intent[1], "description": description}
    return _match(text)


# --------------------------------------------------------------------------- replies

_GREETING = _p(
    r"(?:hi|hello|hey|hiya|howdy|yo|greetings|good (?:morning|afternoon|evening))"
    r"(?: there)?[\s!.,]*"
)
_THANKS = _p(r"(?:ok(?:ay)?,? )?(?:thanks|thank you|thx|ty|cheers)(?: (?:a lot|so much))?[\s!.,]*")
_HELP = _p(r"(?:help|what can you do|how does this work|what do you do)[\s!.?]*")


def _small_talk(text: str) -> str:
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


def _describe_result(name: str | None, args: dict[str, Any], content: Any) -> str:
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
        lines.append(_describe_result(name or None, args, message.get("content")))
    return "\n".join(lines) if lines else HINT


def _offered_tools(tools: list[ToolSpec]) -> set[str]:
    names: set[str] = set()
    for tool in tools:
        function = tool.get("function")
        spec = function if isinstance(function, dict) else tool
        if isinstance(spec.get("name"), str):
            names.add(spec["name"])
    return names


def _words(text: str) -> int:
    return len(text.split())


class OfflineProvider:
    """A :class:`~agent.providers.base.ModelProvider` that needs no model at all."""

    name = MODEL_NAME

    async def complete(
        self,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        *,
        on_delta: DeltaSink | None = None,
    ) -> ModelReply:
        content = ""
        tool_calls: list[ToolCallRequest] = []
        last = messages[-1] if messages else {}
        role = last.get("role")

        if role == "user":
            text = _message_text(last)
            intent = parse_intent(text)
            offered = _offered_tools(tools)
            # An empty tool list means "no filter" (callers that do not pass specs).
            if intent is not None and offered and intent[0] not in offered:
                content = f"Sorry, I can't do that right now. {HINT}"
            elif intent is not None:
                earlier = sum(
                    len(message.get("tool_calls") or [])
                    for message in messages
                    if message.get("role") == "assistant"
                )
                tool, arguments = intent
                tool_calls.append(
                    ToolCallRequest(
                        id=f"call_{earlier + 1}", name=tool, arguments=json.dumps(arguments)
                    )
                )
            else:
                content = _small_talk(text)
        elif role == "tool":
            content = _answer_tool_results(messages)
        else:
            content = HINT

        if on_delta is not None and content:
            for piece in re.findall(r"\S+\s*|\s+", content):
                await on_delta(piece)
                await asyncio.sleep(0)

        return ModelReply(
            content=content,
            tool_calls=tool_calls,
            model=MODEL_NAME,
            prompt_tokens=sum(_words(_message_text(message)) for message in messages),
            completion_tokens=_words(content)
            + sum(_words(call.name) + _words(call.arguments) for call in tool_calls),
        )

    async def aclose(self) -> None:
        return None
