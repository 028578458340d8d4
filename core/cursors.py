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
        key = hashlib.sha256(b"taskchat-cursor:" + secret.encode()).digest()
        # HMAC-SHA256 (RFC 2104) from its two keyed hash states, copied for each cursor
        # (a page signs one per row): half the cost of copying an `hmac.HMAC`, the same
        # bytes (tests/test_cursor_codec.py)
        block = key.ljust(hashlib.sha256().block_size, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))

    def _mac(self, payload: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:_MAC_BYTES]

    def encode(self, kind: str, scope: str, key: Sequence[KeyPart]) -> str:
        # orjson writes a datetime as `isoformat()` does and a UUID as `str()` does: the
        # same bytes as the earlier `[v.isoformat() ...]` encoder (tests/test_cursor_codec.py)
        payload = orjson.dumps([kind, scope, [_plain(v) for v in key]])
        return base64.urlsafe_b64encode(self._mac(payload) + payload).decode().rstrip("=")

    def decode(
        self, cursor: str, kind: str, scope: str, types: Sequence[KeyType]
    ) -> tuple[KeyPart, ...]:
        invalid = BadUserInput("invalid cursor", field="cursor")
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, binascii.Error):
            raise invalid from None
        mac, payload = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        expected = self._mac(payload)
        if not hmac.compare_digest(mac, expected):
            raise invalid
        try:
            found_kind, found_scope, values = orjson.loads(payload)
            if found_kind != kind or found_scope != scope or len(values) != len(types):
                raise invalid
            return tuple(_parse(v, t) for v, t in zip(values, types, strict=True))
        except (ValueError, TypeError):
            raise invalid from None


def _plain(value: KeyPart) -> datetime | str | int:
    """orjson writes a `datetime` itself (not a subclass); a UUID (asyncpg's is a
    subclass orjson refuses) as `str()`; anything else is an int (a bool, say)."""
    if type(value) is datetime:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if isinstance(value, uuid.UUID) else int(value)


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
