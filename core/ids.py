"""Global ids: opaque to clients, `base64url("TypeName:uuid")` underneath."""

from __future__ import annotations

import base64
import binascii
import uuid

from core.errors import BadUserInput

NODE_TYPES = frozenset({"User", "Conversation", "Message", "Task"})


def to_global_id(type_name: str, row_id: uuid.UUID) -> str:
    raw = f"{type_name}:{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_global_id(global_id: str) -> tuple[str, uuid.UUID]:
    """The (type name, uuid) behind an id; `BAD_USER_INPUT` when it is not one of ours."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, raw_id = base64.urlsafe_b64decode(padded).decode().partition(":")
        row_id = uuid.UUID(raw_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadUserInput("malformed id", field="id") from None
    if type_name not in NODE_TYPES:
        raise BadUserInput("malformed id", field="id")
    return type_name, row_id


def expect_global_id(global_id: str, type_name: str, field: str = "id") -> uuid.UUID:
    found_type, row_id = parse_global_id(global_id)
    if found_type != type_name:
        raise BadUserInput(f"expected a {type_name} id", field=field)
    return row_id
