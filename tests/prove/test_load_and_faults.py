"""The short, seeded versions of the reliability proofs (prove/load.py, prove/faults.py):
real server processes on PostgreSQL, the database checked afterwards."""

from __future__ import annotations

from prove import faults
from prove.load import run_load

NEVER = ("INTERNAL_SERVER_ERROR", "NO_CODE", "HTTP_5", "TRANSPORT_ERROR", "CLIENT_TIMEOUT")


async def test_load_loses_nothing() -> None:
    report = await run_load(users=12, seconds=3, seed=7)
    print(report.summary())
    assert report.tally.requests > 0
    assert report.check.figures["acknowledged"] > 0
    assert not [code for code in report.tally.outcomes if code.startswith(NEVER)], report.summary()
    assert report.check.ok, report.check.summary()


async def test_database_outage_fails_fast_and_recovers() -> None:
    scenario = await faults.outage(users=6, seconds=4, down_seconds=1.5, seed=3)
    print(scenario.summary())
    assert scenario.ok, scenario.summary()


async def test_model_errors_rate_limits_and_hangs_answer_agent_codes() -> None:
    scenario = await faults.model_faults(users=4, window=1.5, seed=5)
    print(scenario.summary())
    assert scenario.ok, scenario.summary()


async def test_sigterm_during_load_shuts_down_cleanly() -> None:
    scenario = await faults.sigterm(users=6, seconds=3, seed=9)
    print(scenario.summary())
    assert scenario.ok, scenario.summary()


async def test_kill_9_mid_burst_leaves_only_whole_turns() -> None:
    scenario = await faults.kill9(users=4, seed=11)
    print(scenario.summary())
    assert scenario.ok, scenario.summary()
