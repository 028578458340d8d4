"""How well the offline agent understands everyday phrasings it was not written against.

`corpus/dev.jsonl` is what the grammar was tuned on; `corpus/heldout.jsonl` was written
at the same time and never tuned on. Each line: the text, the tool it should call (or
null: not understood, so no tool), and the arguments. A reference title is compared
without case and without a leading article ("the report" names the task "report" as well
as "Write the report": the tool resolves it), a new title or description without case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.providers.offline import parse_intent

CORPUS = Path(__file__).parent / "corpus"
HELD_OUT_TARGET = 0.90
_ARTICLES = ("the ", "my ", "a ", "an ")


def load(name: str) -> list[dict[str, Any]]:
    lines = (CORPUS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def canonical(tool: str | None, arguments: dict[str, str] | None) -> tuple[Any, ...]:
    if tool is None:
        return (None,)
    values: dict[str, str] = {}
    for key, value in (arguments or {}).items():
        text = " ".join(value.split()).casefold()
        if key == "title" and tool != "add_task":
            text = text.strip("\"'")
            while text.startswith(_ARTICLES):
                text = text.split(" ", 1)[1]
        values[key] = text
    return (tool, tuple(sorted(values.items())))


def misses(name: str) -> tuple[int, list[str]]:
    cases = load(name)
    wrong = []
    for case in cases:
        got = parse_intent(case["text"])
        expected = canonical(case["tool"], case["arguments"])
        actual = canonical(*got) if got else (None,)
        if actual != expected:
            wrong.append(f"{case['text']!r}: expected {expected}, got {actual}")
    return len(cases), wrong


def test_the_corpus_is_broad_and_its_sets_do_not_overlap() -> None:
    dev, held_out = load("dev"), load("heldout")
    assert len(dev) + len(held_out) >= 300
    assert not {c["text"].casefold() for c in dev} & {c["text"].casefold() for c in held_out}
    for cases in (dev, held_out):
        tools = {case["tool"] for case in cases}
        assert tools == {
            "add_task",
            "list_tasks",
            "complete_task",
            "update_task",
            "delete_task",
            None,
        }


@pytest.mark.parametrize("name", ["dev", "heldout"])
def test_accuracy(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    total, wrong = misses(name)
    accuracy = 1 - len(wrong) / total
    with capsys.disabled():
        print(f"\noffline agent, {name}: {total - len(wrong)}/{total} = {accuracy:.1%}")
    # the held-out set is the measure; the development set may not fall below it either
    assert accuracy >= HELD_OUT_TARGET, "\n".join(wrong)
