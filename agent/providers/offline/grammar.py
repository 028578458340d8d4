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

__all__ = ["Intent", "near", "parse_intent", "whole"]

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
    rf"(?:please|pls|plz|kindly|hey|hi|hello|ok|okay|so|and|also|now|go ahead and|let{_APOS}s"
    r"|oh|um|uh|well|actually|just|btw|quick(?:ly)?|right|alright|yes|yeah|hmm"
    rf"|(?:can|could|would|will) you(?: please)?|i(?:{_APOS}d| would) like (?:you )?to"
    r"|i want (?:you )?to(?= (?:add|create|list|show|see|delete|remove|rename|change|update"
    r"|edit|complete|finish|mark|tick|check|cross|cancel|drop|erase))"
    r"|i wanna(?= (?:add|see|delete|remove|rename|change|complete|mark))|help me)"
    r"[,!]?\s+(?P<rest>.+)"
)
# "thanks" only after a comma: "remind me to send thanks" must keep its last word.
_TRAILING_FILLER = whole(
    r"(?P<rest>.+?)(?:[\s,]+(?:please|pls|plz|for me|if you can|if possible|real quick)"
    r"|,\s*(?:thanks|thank you|thx|ty|cheers))"
)
_TRAILING_THANKS = re.compile(
    r"(?<!\bsend)(?<!\bsay)(?<!\bgive)(?<!\bwrite)\s+(?:thanks|thank you|thx|ty)$", re.IGNORECASE
)
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


def _group(match: re.Match[str], name: str) -> str | None:
    """The first of the groups ``name``, ``name2``, ``name3``, ... that matched."""
    for key, value in match.groupdict().items():
        if value is not None and key.rstrip("0123456789") == name:
            return value
    return None


def _add_title(raw: str | None) -> Intent | None:
    title = _clean_title(raw or "")
    return ("add_task", {"title": title}) if title else None


def _list_by_word_value(word: str | None) -> Intent:
    word = (word or "").lower()
    if re.fullmatch(rf"{_COMPLETED_WORDS}|finish|complete", word):
        return ("list_tasks", {"status": "COMPLETED"})
    return ("list_tasks", {"status": "PENDING"})


def _on_group(tool: str, match: re.Match[str]) -> Intent | None:
    task = _clean_title(_group(match, "task") or "")
    return (tool, {"title": task}) if task else None


def _rename_groups(match: re.Match[str]) -> Intent | None:
    task = _clean_title(_group(match, "task") or "")
    title = _clean_title(_group(match, "title") or "")
    if not task or not title:
        return None
    return ("update_task", {"title": task, "new_title": title})


def _redescribe_groups(match: re.Match[str]) -> Intent | None:
    raw = _group(match, "task") or ""
    if re.match(r"(?:add|create|new)\b", raw, re.IGNORECASE):
        return None  # "add buy milk (description: ...)" adds, it does not edit
    task = _clean_title(raw)
    description = _strip_quotes(_group(match, "description") or "")
    if not task or not description:
        return None
    return ("update_task", {"title": task, "description": description})


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
_VERB_COMPLETE = r"(?:complete|finish|close(?: out)?|wrap up|tick off|check off|cross off|mark off)"
_VERB_RENAME = r"(?:rename|change|update|edit|retitle)"
_VERB_DELETE = r"(?:delete|remove|cancel|drop|erase|scrap|trash|get rid of)"

_NEED = whole(
    rf"(?:(?:i|we)(?:{_APOS}ll| will)? |i{_APOS}ve |i have |we{_APOS}ve )?"
    r"(?:(?:really |still |also )?(?:have to|need to|needs? 2|need 2|must|should|gotta"
    r"|got to|ought to|want to|wanna)|have got to) (?P<title>.+)"
)

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
    # ---- list_tasks, said without "tasks"
    (
        whole(
            rf"(?:{_VERB_LIST}|let me see |can i (?:see|get|have) |pull up |bring up )?"
            r"(?:me )?(?:all|everything|(?:all|everything) (?:of them|i have|there is|on it)"
            rf"|the (?:full|whole|entire) list|what i(?:{_APOS}ve| have)(?: got)?"
            rf"|all (?:my |the )?(?:{_NOUNS}|(?:{_NOUN} )?list)|my list|the list"
            rf"|(?:all )?(?:my |the )?{_NOUNS})"
        ),
        _list(None),
    ),
    (whole(r"list|list (?:them|it|all|everything)"), _list(None)),
    (
        whole(
            rf"(?:what|anything)(?:{_APOS}s| is| do i have| have i got| i got| else)?"
            r"(?: going)? on(?: (?:my|the) (?:plate|agenda|list|schedule))?(?: for)?"
            r"(?: today| this week| now)?"
            rf"|what{_APOS}?s? (?:is )?(?:on )?(?:my|the) (?:plate|agenda|schedule|list)"
            r"(?: today| this week| now| for today)?"
            rf"|what(?:{_APOS}ve| have) i got(?: going on)?(?: today)?|what do i have(?: on)?"
            r"(?: today)?|do i have anything(?: on| to do)?(?: today)?"
        ),
        _list(None),
    ),
    (
        whole(
            rf"(?:{_VERB_LIST}|let me see |can i see )?(?:me )?(?:the |my )?"
            rf"(?P<status>{_PENDING_WORDS}|{_COMPLETED_WORDS}) (?:ones|stuff|things)"
            rf"|which (?:ones|{_NOUNS}) (?:are|have been|did i)(?: still| already)? "
            rf"(?P<status2>{_PENDING_WORDS}|{_COMPLETED_WORDS}|finish|complete|left)"
        ),
        lambda m: _list_by_word_value(m["status"] or m["status2"]),
    ),
    (
        whole(
            r"what (?:have|did) i (?:not|never) (?:done|finished|completed|do|finish)(?: yet)?"
            rf"|what (?:haven{_APOS}t|didn{_APOS}t) i (?:done|finished|completed|do|finish)"
            r"(?: yet)?|(?:is there )?anything (?:still )?(?:left|open|pending|remaining)"
            rf"(?: to do)?|what(?:{_APOS}s| is)? (?:still )?(?:outstanding|remaining|open|left)"
            r"(?: to do)?|what remains(?: to do)?|whats left(?: to do)?"
        ),
        _list("PENDING"),
    ),
    (
        whole(
            r"what (?:have|did) i (?:get|got|gotten) done(?: so far| this week| today)?"
            r"|what (?:have|did) i (?:accomplish(?:ed)?|achieve(?:d)?)(?: so far)?"
            rf"|what(?:{_APOS}s| is| has been)? (?:already )?(?:done|finished|completed)"
            rf"(?: so far)?|(?:{_VERB_LIST})?(?:me )?(?:the |my )?"
            rf"(?:{_NOUNS}|ones|stuff|everything|what) "
            rf"(?:that )?i(?:{_APOS}ve| have)? (?:already )?(?:done|finished|completed|did)"
            rf"(?: so far)?"
        ),
        _list("COMPLETED"),
    ),
    # ---- update_task, before adding: "add a note to X: Y" edits X
    (
        whole(
            rf"(?:{_VERB_RENAME}|set) (?:the )?(?:description|details|notes?) (?:of|for|on) "
            r"(?P<task>.+?) (?:to|as) (?P<description>.+)"
            r"|(?:add|put|attach) (?:a )?(?:note|notes|details|description) (?:to|on|for) "
            r"(?P<task2>.+?)\s*:\s*(?P<description2>.+)"
            r"|describe (?P<task3>.+?) as (?P<description3>.+)"
            r"|(?P<task4>.+?) (?:description|details|notes?)\s*:\s*(?P<description4>.+)"
            r"|(?:update|change|set) (?:the )?(?P<task5>.+?) description (?:to|as) "
            r"(?P<description5>.+)"
        ),
        lambda m: _redescribe_groups(m),
    ),
    (
        whole(
            r"(?P<task>.+?) should (?:be|say|read) (?P<title>.+)"
            rf"|(?:make|change|edit|update) (?P<task2>.+?) (?:to )?(?:say|read) (?P<title2>.+)"
            rf"|{_VERB_RENAME} (?P<task3>.+?) (?:as) (?P<title3>.+)"
        ),
        lambda m: _rename_groups(m),
    ),
    # ---- add_task
    # a need said as a need: "I have to call the dentist", "gotta get groceries"
    (_NEED, _add),
    (
        whole(
            rf"(?:remember|don{_APOS}t forget|do not forget|make sure|note to self"
            r"|make a note|note|jot down|write down|note down|put down)"
            r"(?: to)?\s*[:\-\u2013]?\s*(?P<title>.+)"
        ),
        _add,
    ),
    (
        whole(
            rf"(?:{_NOUN}|add|new)\s*[:\-\u2013]\s*(?P<title>.+)"
            rf"|(?:to-?do|new {_NOUN}|add {_NOUN}) (?P<title2>.+)"
        ),
        lambda m: _add_title(m["title"] or m["title2"]),
    ),
    (
        whole(
            r"(?P<title>.+?)\s*[,\-\u2013]\s*(?:please )?(?:add|put|save) (?:that|it|this)"
            r"(?: (?:to|on) (?:my |the )?(?:list|tasks))?(?: as a (?:task|to-?do))?"
        ),
        _add,
    ),
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
    # ---- delete_task, said as a fact or a change of mind
    (
        whole(
            rf"(?:i )?(?:don{_APOS}t|do not|no longer) need (?P<task>.+?)(?: any ?more)?"
            r"|no need (?:for|to) (?P<task2>.+?)(?: any ?more)?"
            r"|(?P<task3>.+?) (?:is|are) (?:no longer|not) needed(?: any ?more)?"
            r"|(?P<task4>.+?) can go|forget(?: about)? (?P<task5>.+)"
            r"|never ?mind(?: about)? (?P<task6>.+)"
            r"|(?:scratch|throw away|throw out|kill|nuke|ditch|bin|axe|strike) (?P<task7>.+?)"
            rf"(?: (?:from|off) {_MY_LIST})?"
            rf"|take (?P<task8>.+?) (?:off|out of|from) {_MY_LIST}"
        ),
        lambda m: _on_group("delete_task", m),
    ),
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
    # ---- complete_task, said as a fact: "the report is finished", "call mom - done"
    (
        whole(
            rf"(?P<task>.+?)(?:{_APOS}s| is| are| was| were| has been| have been)(?: now| all)?"
            r" (?:done|finished|complete|completed|ready|sorted|handled|taken care of|sent|paid)"
            rf"(?:,? (?:so |you can )?(?:mark|tick|check|cross) (?:it|that)(?: off)?"
            rf"(?: as)?(?: done| complete| completed)?)?"
            r"|set (?P<task7>.+?) (?:to|as) (?:done|complete|completed|finished)"
            r"|(?:i )?(?:finally |just )?(?:got|get) (?P<task5>.+?) done"
            rf"|cross (?P<task9>.+?) off(?: {_MY_LIST})?"
            r"|(?:done|finished|completed)\s*[:\-\u2013]\s*(?P<task3>.+)"
            r"|finished (?P<task4>.+)"
            r"|i (?:finally |just )?(?:finished|completed|did) (?P<task6>.+)"
            r"|(?P<task2>.+?)\s*[:\-\u2013,]?\s*(?:done|finished|completed|complete)"
        ),
        lambda m: _on_group("complete_task", m),
    ),
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
        text = _TRAILING_THANKS.sub("", text)
        trailing = _TRAILING_FILLER.match(text)
        if trailing:
            text = trailing["rest"]
        leading = _LEADING_FILLER.match(text)
        if leading:
            text = leading["rest"]
        if text == before:
            return text


_VERBS = [
    "add",
    "create",
    "list",
    "show",
    "display",
    "delete",
    "remove",
    "rename",
    "complete",
    "mark",
    "finish",
    "change",
    "update",
    "edit",
    "cancel",
    "erase",
    "check",
    "tick",
    "cross",
    "remind",
    "make",
    "describe",
    "set",
    "retitle",
]
_NOUN_WORDS = ("task", "tasks", "todo", "todos")
# real words one edit away from a command word: never "corrected"
_REAL_WORDS = frozenset(
    [
        "ask",
        "asks",
        "tas",
        "tak",
        "lost",
        "last",
        "test",
        "mask",
        "make",
        "made",
        "date",
        "care",
        "shoe",
        "shop",
        "sell",
        "slow",
        "mast",
        "mart",
        "marks",
        "market",
        "rest",
        "list",
        "lift",
        "lint",
        "edit",
        "remote",
        "reset",
        "sit",
        "set",
        "sat",
        "send",
        "tick",
        "how",
        "who",
        "dad",
        "trick",
        "thick",
        "stick",
        "ease",
        "sow",
        "shot",
        "shoot",
        "mar",
        "ark",
        "lists",
        "shows",
        "adds",
        "marked",
        "sets",
        "kind",
        "update",
        "updated",
        "dates",
        "crass",
        "cheek",
        "chick",
        "chuck",
        "cook",
        "look",
        "book",
        "took",
    ]
)


def near(word: str, target: str, *, substitute: bool) -> bool:
    """One edit apart: a swap of neighbours, a letter dropped or doubled, or (when
    ``substitute``) one letter replaced."""
    if word == target:
        return False
    if len(word) == len(target):
        diff = [i for i, (a, b) in enumerate(zip(word, target, strict=True)) if a != b]
        if len(diff) == 2 and diff[1] == diff[0] + 1:
            return word[diff[0]] == target[diff[1]] and word[diff[1]] == target[diff[0]]
        return substitute and len(diff) == 1
    short, long = sorted((word, target), key=len)
    if len(long) - len(short) != 1:
        return False
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _fix_typos(text: str) -> str:
    """Mistyped command words ("lsit", "delet", "compelte", "tsak") become the word meant;
    other words (titles) are left as typed."""
    words = text.split(" ")
    first = words[0].lower()
    if first == "adda":
        words[0:1] = ["add", "a"]
    elif first.isalpha() and first not in _VERBS and first not in _REAL_WORDS and len(first) >= 3:
        for verb in _VERBS:
            if near(first, verb, substitute=len(first) >= 5):
                words[0] = verb
                break
    for index, word in enumerate(words[1:], start=1):
        lower = word.lower()
        if not lower.isalpha() or lower in _REAL_WORDS or lower in _NOUN_WORDS or len(lower) < 3:
            continue
        for noun in _NOUN_WORDS:
            if near(lower, noun, substitute=False):
                words[index] = noun
                break
    return " ".join(words)


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
    original = text
    text = _normalise(text)
    if not text:
        return None
    text = _fix_typos(text)
    intent = _parse(text)
    if intent is None:
        # "I want to update my CV": the filler hid a need, not a command
        plain = _TRAILING_PUNCT.sub("", " ".join(original.split()))
        need = _NEED.match(plain)
        if need:
            intent = _add(need)
    if intent is None:
        # "paid rent - mark pay rent done": one clause carries the request
        clauses = [c for c in _CLAUSE_BREAK.split(text) if c.strip()]
        if len(clauses) > 1:
            for clause in reversed(clauses):
                intent = _parse(clause)
                if intent is not None and intent[0] != "delete_task":
                    break
                intent = None
    return intent


_CLAUSE_BREAK = re.compile(r"\s+[-\u2013]\s+|[,;]\s+|\.\.+\s*")


def _parse(text: str) -> Intent | None:
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
