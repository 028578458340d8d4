"""The hostile corpus (prove/hostile.py), one test per case, against a real server process
on PostgreSQL: a 4xx or a contract code, no hang, and the server healthy afterwards.

Cases marked xfail fail today only because of a defect listed in issue 9; each mark names
the defect, and is strict so that the fix's merge flips it."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from prove.common import ServerProcess, drop_database, fresh_database
from prove.hostile import CASES, Target, prepare, run_case

KNOWN_DEFECTS = {
    "subscription over plain HTTP": "issue 9 defect 5",
}


def _params() -> list[object]:
    params: list[object] = []
    for name in CASES:
        marks = []
        if name in KNOWN_DEFECTS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_DEFECTS[name]))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


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
