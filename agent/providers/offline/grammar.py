"""The offline agent's grammar: a user message to ``(tool_name, arguments)``.

It understands a fixed set of English phrasings ("add a task to buy milk", "list my
tasks", "mark buy milk as done", ...) and turns each into exactly one tool call.

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

import re
from collections.abc import Callable

__all__ = ["Intent", "parse_intent", "whole"]

Intent = tuple[str, dict[str, str]]
_Builder = Callable[[re.Match[str]], Intent | None]

_NOUN = r"(?:task|to-?do|item|reminder)"
_NOUNS = _NOUN + r"s?"
_APOS = r"['\u2019]"  # users type curly apostrophes too
_PENDING_WORDS = r"pending|open|remaining|incomplete|unfinished|outstanding|active|current"
# Not "complete": "complete task" is a (titleless) command, not "completed tasks".
_COMPLETED_WORDS = r"completed|done|finished|closed|checked off"
# "my list", "the list", "my tasks", "my to-do list", "my todos"
_MY_LIST = rf"(?:my |the )?(?:{_NOUN} )?(?:list|{_NOUNS})"
_ARTICLE = r"(?:the|my|a|an|this|that)"


def whole(pattern: str) -> re.Pattern[str]:
    """A whole-text, case-insensitive pattern."""
    return re.compile(rf"^(?:{pattern})$", re.IGNORECASE)


_LEADING_FILLER = whole(
    rf"(?:please|pls|kindly|hey|hi|hello|ok|okay|so|and|also|now|go ahead and|let{_APOS}s"
    rf"|(?:can|could|would|will) you|i(?:{_APOS}d| would) like (?:you )?to|i want (?:you )?to)"
    r"[,!]?\s+(?P<rest>.+)"
)
# "thanks" only after a comma: "remind me to send thanks" must keep its last word.
_TRAILING_FILLER = whole(r"(?P<rest>.+?)(?:[\s,]+(?:please|pls)|,\s*(?:thanks|thank you|thx))")
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
_AFTER_ARTICLE = whole(rf"{_ARTICLE}\s+(?P<title>.+)")
# "the buy milk task" -> "buy milk"; only with the article, so "Write task" stays intact
_TITLE_SUFFIX = whole(rf"(?:the|my)\s+(?P<title>.+?)\s+{_NOUN}")
# References we cannot resolve ("delete it", "delete all tasks") and no title at all.
_NOT_A_TITLE = whole(
    rf"(?:{_ARTICLE} )?(?:{_NOUNS}|(?:{_NOUN} )?list)"
    rf"|it|this|that|this one|that one|them|everything|all(?: of)?(?: my| the)?(?: {_NOUNS})?"
)

_DESCRIPTION_SUFFIXES = (
    whole(
        r"(?P<core>.+?)\s*\((?:description|desc|details|notes?)\s*[:\-]?\s*"
        r"(?P<description>[^()]+)\)"
    ),
    whole(
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
        whole(
            rf"{_VERB_LIST}?(?:all )?(?:of )?(?:my |the )?"
            rf"(?:(?P<status>{_PENDING_WORDS}|{_COMPLETED_WORDS}) )?(?:{_NOUNS}|(?:{_NOUN} )?list)"
        ),
        _list_by_word,
    ),
    (
        whole(
            rf"(?:what|which) (?:{_NOUNS} )?(?:have|did) i (?:already )?"
            r"(?:completed?|finish(?:ed)?|done|get done|got done|check(?:ed)? off)(?: so far)?"
        ),
        _list("COMPLETED"),
    ),
    (
        whole(rf"(?:what|which) {_NOUNS} (?:are|have been|were) (?:{_COMPLETED_WORDS})"),
        _list("COMPLETED"),
    ),
    (
        whole(r"what (?:do|else do) i (?:still )?(?:have|need|got) to do(?: today)?"),
        _list("PENDING"),
    ),
    (
        whole(rf"what(?:{_APOS}s| is| are) (?:still )?(?:left|pending|remaining|open)(?: to do)?"),
        _list("PENDING"),
    ),
    (
        whole(rf"(?:what|which) {_NOUNS} (?:are|is) (?:still )?(?:{_PENDING_WORDS}|left)"),
        _list("PENDING"),
    ),
    (
        whole(rf"what(?:{_APOS}s| is| are)(?: on)? (?:my|the) (?:{_NOUNS}|(?:{_NOUN} )?list)"),
        _list(None),
    ),
    (
        whole(rf"(?:what {_NOUNS} do i have|do i have any {_NOUNS}|how many {_NOUNS} do i have)"),
        _list(None),
    ),
    # ---- add_task
    (whole(rf"(?:add|put) (?P<title>.+?) (?:to|on|onto|in) {_MY_LIST}"), _add),
    (
        # "add a task to buy milk": the "to" belongs to the phrase, not the title
        whole(
            rf"{_VERB_ADD}(?: a| an| another| one)?(?: new)? {_NOUN}\b"
            r"(?: (?:called|named|titled|saying|that says))?\s*[:\-\u2013]?\s*"
            r"(?:(?:to|for) )?(?P<title>.+)"
        ),
        _add,
    ),
    (whole(rf"(?:remind me to|don{_APOS}t let me forget to) (?P<title>.+)"), _add),
    (whole(r"add (?P<title>.+)"), _add),
    # ---- update_task
    (
        whole(
            rf"{_VERB_RENAME}(?: the)? description (?:of|for|on) (?P<task>.+?) to "
            r"(?P<description>.+)"
        ),
        _redescribe,
    ),
    (
        whole(rf"{_VERB_RENAME}(?: the)? (?:title|name) of (?P<task>.+?) to (?P<title>.+)"),
        _rename,
    ),
    (
        # Quoted titles may themselves contain " to ", so split on the closing quote.
        whole(
            rf"{_VERB_RENAME}(?: the)?(?: {_NOUN})? [\"\u201c](?P<task>[^\"\u201d]+)[\"\u201d] "
            r"(?:to|into|as) (?P<title>.+)"
        ),
        _rename,
    ),
    # Unquoted, the first " to " separates old from new title.
    (whole(rf"{_VERB_RENAME} (?P<task>.+?) (?:to|into) (?P<title>.+)"), _rename),
    # ---- complete_task
    (
        whole(rf"mark (?P<task>.+?)(?: as)? (?:complete|{_COMPLETED_WORDS})"),
        _on_task("complete_task"),
    ),
    (whole(r"(?:tick|check|cross|mark) (?P<task>.+?) off"), _on_task("complete_task")),
    (
        whole(rf"i(?:{_APOS}ve| have)? (?:just )?(?:finished|completed|done|did) (?P<task>.+)"),
        _on_task("complete_task"),
    ),
    (
        whole(rf"(?:i{_APOS}m |i am )?(?:done|finished) with (?P<task>.+)"),
        _on_task("complete_task"),
    ),
    (whole(rf"{_VERB_COMPLETE} (?P<task>.+)"), _on_task("complete_task")),
    # ---- delete_task
    (
        whole(rf"{_VERB_DELETE} (?P<task>.+?)(?: (?:from|off) {_MY_LIST})?"),
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
