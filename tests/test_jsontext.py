"""JSON text by orjson reads and writes what the standard library would."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core import jsontext

VALUES: list[Any] = [
    {"tool": "list_tasks", "arguments": {"status": "OPEN"}, "ok": True, "n": None},
    [1, 2.5, -0.0, "Öl wechseln ✓", "\u2028", {"nested": [[]]}],
    {"big": 2**70, "negative_big": -(2**65)},  # past orjson's 64 bits
    {1: "an integer key", "2": "a string key"},
    "",
    0,
]


@pytest.mark.parametrize("value", VALUES)
def test_what_it_writes_reads_back_as_the_standard_librarys(value: Any) -> None:
    text = jsontext.dumps(value)
    assert "\n" not in text
    assert json.loads(text) == json.loads(json.dumps(value))
    assert jsontext.loads(text) == json.loads(json.dumps(value))


@pytest.mark.parametrize("value", VALUES)
def test_it_reads_what_the_standard_library_wrote(value: Any) -> None:
    written = json.dumps(value)
    assert jsontext.loads(written) == json.loads(written)
    assert jsontext.loads(written.encode()) == json.loads(written)


def test_what_neither_can_write_is_refused() -> None:
    with pytest.raises(TypeError):
        jsontext.dumps({"value": object()})
