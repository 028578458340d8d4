"""Input checks shared by every use case; failures are `BAD_USER_INPUT`."""

from __future__ import annotations

import re

from core.errors import BadUserInput

# text that came through JSON escapes can hold halves of UTF-16 pairs; no database takes them
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

CONVERSATION_TITLE_MAX = 200
TASK_TITLE_MAX = 500
DESCRIPTION_MAX = 5000
CLIENT_MESSAGE_ID_MAX = 255
SEARCH_MAX = 200
FEEDBACK_COMMENT_MAX = 2000


def clean_text(value: str, field: str, max_chars: int) -> str:
    """Trimmed, non-empty, at most `max_chars`, no NUL bytes (PostgreSQL refuses them)."""
    cleaned = value.strip()
    if not cleaned:
        raise BadUserInput(f"{field} must not be empty", field=field)
    if len(cleaned) > max_chars:
        raise BadUserInput(f"{field} must be at most {max_chars} characters", field=field)
    if "\x00" in cleaned:
        raise BadUserInput(f"{field} must not contain NUL characters", field=field)
    if _LONE_SURROGATE.search(cleaned):
        raise BadUserInput(f"{field} must be valid Unicode text", field=field)
    return cleaned


def clean_optional_text(value: str | None, field: str, max_chars: int) -> str | None:
    """Like `clean_text`, but empty means "none"."""
    if value is None or not value.strip():
        return None
    return clean_text(value, field, max_chars)
