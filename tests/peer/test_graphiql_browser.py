"""GraphiQL offline, in a real browser: Debian's chromium, headless, driven by
playwright-core (peer/graphiql.mjs). Every asset comes from this server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import LiveServer, make_settings, start_server, token_for
from tests.peer.test_node_peers import run_peer

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
async def graphiql_server(database_urls: dict[str, str]) -> AsyncIterator[tuple[LiveServer, str]]:
    token = token_for(f"graphiql-{uuid.uuid4()}")
    live = await start_server(make_settings(database_urls["sqlite"]), demo_token=token)
    yield live, token
    await live.stop()


async def test_graphiql_runs_a_query_and_streams_a_subscription_offline(
    graphiql_server: tuple[LiveServer, str],
) -> None:
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: run scripts/ensure-system-packages.sh (make test does)")
    live, token = graphiql_server

    code, output = await run_peer("graphiql.mjs", live.url, token, timeout=90)

    assert code == 0, output
    assert "headers pane holds the demo token" in output
    assert "query ran with the demo token" in output
    assert "ok: GraphiQL works offline" in output
