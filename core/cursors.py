"""Opaque, signed pagination cursors.

A cursor carries the keyset position of a row, the kind of list it belongs to and that
list's scope (e.g. the conversation of a message page). It is signed, so a forged cursor,
or one taken from another list, is refused with `BAD_USER_INPUT` instead of silently
paging somewhere else. Every instance derives the same key, so cursors work across them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import orjson

from core.errors import BadUserInput

KeyPart = datetime | uuid.UUID | int
KeyType = Literal["datetime", "uuid", "int"]
_MAC_BYTES = 12


class CursorCodec:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"taskchat-cursor:" + secret.encode()).digest()

    def encode(self, kind: str, scope: str, key: Sequence[KeyPart]) -> str:
        values = [v.isoformat() if isinstance(v, datetime) else _plain(v) for v in key]
        payload = orjson.dumps([kind, scope, values])
        mac = hmac.digest(self._key, payload, "sha256")[:_MAC_BYTES]
        return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")

    def decode(
        self, cursor: str, kind: str, scope: str, types: Sequence[KeyType]
    ) -> tuple[KeyPart, ...]:
        invalid = BadUserInput("invalid cursor", field="cursor")
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, binascii.Error):
            raise invalid from None
        mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        expected = hmac.digest(self._key, payload, "sha256")[:_MAC_BYTES]
        if not hmac.compare_digest(mac, expected):
            raise invalid
        try:
            found_kind, found_scope, values = orjson.loads(payload)
            if found_kind != kind or found_scope != scope or len(values) != len(types):
                raise invalid
            return tuple(_parse(v, t) for v, t in zip(values, types, strict=True))
        except (ValueError, TypeError):
            raise invalid from None


def _plain(value: KeyPart) -> str | int:
    return str(value) if isinstance(value, uuid.UUID) else int(value)  # type: ignore[arg-type]


def _parse(value: object, key_type: KeyType) -> KeyPart:
    if key_type == "int" and isinstance(value, int):
        return value
    if key_type == "uuid" and isinstance(value, str):
        return uuid.UUID(value)
    if key_type == "datetime" and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive datetime")
        return parsed
    raise ValueError("bad cursor value")
