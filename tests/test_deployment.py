"""The deployment bits, outside a container: docker/entrypoint.sh (the image's start
logic) on fresh databases, several workers, the console script, the proxy setting."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from main import uvicorn_options
from tests.conftest import (
    ROOT,
    TEST_SECRET,
    GraphQLClient,
    _recreate_pg_database,
    _worker,
    make_settings,
    token_for,
)
from tests.live.test_websocket import SEND_MESSAGE
from tests.pgtools import free_port

ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
BIN = ROOT / ".venv" / "bin"


def _env(**settings: str) -> dict[str, str]:
    """A bare environment, as a container has: the venv's `taskchat` and `python` first."""
    return {
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "JWT_SECRET": TEST_SECRET,
        "AGENT_PROVIDER": "offline",
        "DB_POOL_SIZE": "3",  # the test PostgreSQL's connection limit is shared
        **{name.upper(): value for name, value in settings.items()},
    }


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@asynccontextmanager
async def entrypoint(log_path: Path, env: dict[str, str]) -> AsyncIterator[tuple[str, int]]:
    """docker/entrypoint.sh with no arguments (the image's CMD); yields the base URL and
    the server's pid once /health answers."""
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(ENTRYPOINT)], cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"server exited early:\n{log_path.read_text()}")
                try:
                    if (await http.get(f"{url}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"server never became healthy:\n{log_path.read_text()}")
                await asyncio.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 15)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 10)


async def _served(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        assert (await http.get("/ready")).status_code == 200
        client = GraphQLClient(http, token_for(f"deploy-{uuid.uuid4()}"))
        data = await client.data(SEND_MESSAGE, {"input": {"content": "add task: deploy"}})
        assert data["sendMessage"]["message"]["content"] == 'Added "deploy" to your tasks.'


def _workers(pid: int) -> list[str]:
    """Command lines of the server's child processes."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    lines = [Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ") for child in children]
    return [line.decode() for line in lines if b"multiprocessing.spawn" in line]


async def test_entrypoint_serves_a_fresh_sqlite_database_and_reports_health(
    tmp_path: Path,
) -> None:
    env = _env(database_url=f"sqlite:///{tmp_path / 'fresh.db'}", port=str(free_port()))
    async with entrypoint(tmp_path / "serve.log", env) as (url, _pid):
        await _served(url)
        assert _run(env, "healthcheck").returncode == 0
    assert "GraphiQL:   http://0.0.0.0:" in (tmp_path / "serve.log").read_text()
    stopped = _run(env, "healthcheck")
    assert stopped.returncode == 1
    assert stopped.stderr.startswith("unhealthy: ")


async def test_entrypoint_with_two_workers_on_a_fresh_postgres_database(tmp_path: Path) -> None:
    database_url = await _recreate_pg_database(f"taskchat_deploy_{_worker()}")
    pasted = database_url.replace("postgresql+asyncpg://", "postgres://")
    pasted += "?sslmode=prefer&channel_binding=prefer"
    env = _env(database_url=pasted, port=str(free_port()), web_concurrency="2")
    async with entrypoint(tmp_path / "serve.log", env) as (url, pid):
        await _served(url)
        assert len(_workers(pid)) == 2
    assert "ignoring 'channel_binding'" in (tmp_path / "serve.log").read_text()


def test_entrypoint_runs_taskchat_commands_and_other_programs(tmp_path: Path) -> None:
    env = _env(database_url=f"sqlite:///{tmp_path / 'x.db'}")
    token = _run(env, "token", "alice", "--ttl", "5m")  # through the `taskchat` console script
    assert token.returncode == 0, token.stderr
    assert token.stdout.count(".") == 2  # a JWT
    assert _run(env, "sh", "-c", "echo $HOST:$PORT").stdout == "0.0.0.0:8000\n"


@pytest.mark.parametrize("proxies", ["127.0.0.1", "10.0.0.0/8,192.168.1.7", "*"])
def test_forwarded_allow_ips_reaches_uvicorn(proxies: str) -> None:
    options = uvicorn_options(make_settings("sqlite+aiosqlite://", forwarded_allow_ips=proxies))
    assert options["proxy_headers"] is True
    assert options["forwarded_allow_ips"] == proxies
