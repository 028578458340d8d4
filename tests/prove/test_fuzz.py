"""A seeded few hundred operations generated from the live schema (prove/fuzz.py)."""

from __future__ import annotations

from prove.fuzz import run_fuzz


async def test_generated_operations_never_answer_5xx_or_internal_errors() -> None:
    report = await run_fuzz(examples=200, seed=1)
    print(report.summary())
    assert report.sent == 200
    assert report.statuses, report.summary()
    assert report.ok, report.summary()
