"""Production log lines are one JSON object each, whatever the values logged."""

from __future__ import annotations

import io
import json
import sys
import uuid
from datetime import UTC, datetime

import pytest

from core.logging import configure_logging, get_logger, json_line


def test_a_line_holds_every_field(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    configure_logging(json=True)
    monkeypatch.setattr(sys, "stderr", stream)  # here: pytest swaps it between phases
    get_logger("t").info("graphql operation", user="ü", elapsed_ms=1.25, n=None)
    configure_logging(json=False)
    entry = json.loads(stream.getvalue())
    assert entry["event"] == "graphql operation"
    assert entry["user"] == "ü"
    assert entry["elapsed_ms"] == 1.25
    assert entry["n"] is None
    assert entry["level"] == "info"
    assert entry["timestamp"].endswith("Z")


def test_each_line_goes_to_stderr_as_it_is_then(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging(json=True)
    log = get_logger("t")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    log.info("one")
    monkeypatch.setattr(sys, "stderr", second)
    log.info("two")
    configure_logging(json=False)
    assert [json.loads(line)["event"] for line in first.getvalue().splitlines()] == ["one"]
    assert [json.loads(line)["event"] for line in second.getvalue().splitlines()] == ["two"]


@pytest.mark.parametrize(
    "value",
    [
        2**70,  # past orjson's 64 bits
        {1: "a"},  # a key that is not a string
        uuid.UUID(int=7),
        datetime(2026, 1, 2, tzinfo=UTC),
        object(),  # no JSON form at all: its repr
        float("nan"),
    ],
)
def test_any_value_makes_one_json_line(value: object) -> None:
    line = json_line({"event": "x", "value": value}, default=repr)
    assert "\n" not in line
    assert json.loads(line)["event"] == "x"
