"""The hostile corpus (prove/hostile.py), one test per case, against a real server process
on PostgreSQL: a 4xx or a contract code, no hang, and the server healthy afterwards."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from prove.common import ServerProcess, drop_database, fresh_database
from prove.hostile import CASES, Target, prepare, run_case


def _params() -> list[object]:
    return [pytest.param(name, id=name) for name in CASES]


@dataclass
class Running:
    url: str
    server: ServerProcess
    target: Target

    async def restart(self) -> None:
        """A case hung or crashed the server: a fresh one for the next case."""
        self.server.signal(signal.SIGKILL)
        self.server.wait()
        self.server = await ServerProcess(self.url).start()
        self.target = await prepare(self.server)


@pytest.fixture(scope="module")
async def running() -> AsyncIterator[Running]:
    url = await fresh_database()
    server = await ServerProcess(url).start()
    holder = Running(url, server, await prepare(server))
    yield holder
    holder.server.stop()
    await drop_database(url)


@pytest.mark.parametrize("name", _params())
async def test_hostile_case_is_refused_and_server_stays_healthy(
    running: Running, name: str
) -> None:
    outcome, healthy, detail = await run_case(running.target, name)
    if not healthy:
        await running.restart()
    assert outcome.ok, outcome.detail
    assert healthy, detail
