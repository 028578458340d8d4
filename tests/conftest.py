"""Test fixtures: real databases (SQLite and PostgreSQL), real servers, real clients.

Every data test runs once per backend (`backend` is parametrized). Each xdist worker
gets its own PostgreSQL database and SQLite file, migrated with Alembic; tests isolate
themselves by using fresh user subjects, so nothing is reset between tests.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy.engine import make_url

from core.auth import create_token
from core.config import Settings
from main import create_app, run_migrations

TEST_SECRET = "test-secret-" + "x" * 40
PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgres"]


def _worker() -> str:
    """Unique per test process, so concurrent runs never share a database."""
    return f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


_created_pg_databases: set[str] = set()


async def _admin_connection() -> asyncpg.Connection:
    url = make_url(PG_URL)
    return await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=url.database or "postgres",
    )


async def _recreate_pg_database(name: str) -> str:
    admin = await _admin_connection()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    _created_pg_databases.add(name)
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


async def _drop_pg_databases() -> None:
    admin = await _admin_connection()
    try:
        for name in sorted(_created_pg_databases):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    _created_pg_databases.clear()


@pytest.fixture(scope="session")
async def database_urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One migrated database per backend for this worker. PostgreSQL must be reachable:
    its absence fails the run instead of skipping half the suite."""
    worker = _worker()
    sqlite_path = tmp_path_factory.mktemp("sqlite") / f"taskchat-{worker}.db"
    urls = {
        "sqlite": f"sqlite+aiosqlite:///{sqlite_path}",
        "postgres": await _recreate_pg_database(f"taskchat_test_{worker}"),
    }
    for url in urls.values():
        await asyncio.to_thread(run_migrations, url)
    return urls


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "environment": "test",
        "jwt_secret": TEST_SECRET,
        "agent_provider": "offline",
        "rate_limit_per_minute": 1000,
        "ws_max_connections_per_user": 50,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class LiveServer:
    """A real uvicorn server on a free loopback port, in the test's event loop."""

    settings: Settings
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def client(self, token: str | None = None) -> GraphQLClient:
        http = httpx.AsyncClient(base_url=self.url, timeout=30)
        self.clients.append(http)
        return GraphQLClient(http, token)

    async def stop(self) -> None:
        for http in self.clients:
            await http.aclose()
        self.server.should_exit = True
        await asyncio.wait_for(self.task, timeout=10)


async def start_server(settings: Settings, **app_options: Any) -> LiveServer:
    """`app_options` go to `create_app` (e.g. a `tracer_provider`)."""
    config = uvicorn.Config(
        create_app(settings, **app_options),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        ws="websockets-sansio",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return LiveServer(settings, server, task, port)


ServerFactory = Callable[..., Awaitable[LiveServer]]


@pytest.fixture
async def server_factory(
    database_urls: dict[str, str], backend: str
) -> AsyncIterator[ServerFactory]:
    """Starts servers with setting overrides on the test's backend; stops them after."""
    started: list[LiveServer] = []

    async def factory(**overrides: Any) -> LiveServer:
        url = overrides.pop("database_url", database_urls[backend])
        live = await start_server(make_settings(url, **overrides))
        started.append(live)
        return live

    yield factory
    for live in started:
        await live.stop()


_shared_servers: dict[str, LiveServer] = {}


@pytest.fixture
async def server(database_urls: dict[str, str], backend: str) -> LiveServer:
    """The default server for a backend, shared by the tests of this worker."""
    if backend not in _shared_servers:
        _shared_servers[backend] = await start_server(make_settings(database_urls[backend]))
    return _shared_servers[backend]


@pytest.fixture(scope="session", autouse=True)
async def _stop_shared_servers() -> AsyncIterator[None]:
    yield
    for live in _shared_servers.values():
        await live.stop()
    _shared_servers.clear()
    await _drop_pg_databases()


def token_for(subject: str, ttl: timedelta = timedelta(hours=1), **overrides: Any) -> str:
    return create_token(make_settings("sqlite+aiosqlite://", **overrides), subject, ttl)


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, token: str | None) -> None:
        self.http = http
        self.token = token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def raw(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return await self.http.post(
            "/graphql", json=body, headers={**self.headers(), **(headers or {})}
        )

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.raw(query, variables)
        payload: dict[str, Any] = response.json()
        return payload

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The data of a query that must succeed."""
        payload = await self.execute(query, variables)
        assert "errors" not in payload, payload
        data: dict[str, Any] = payload["data"]
        return data

    async def error_code(self, query: str, variables: dict[str, Any] | None = None) -> str:
        payload = await self.execute(query, variables)
        assert payload.get("errors"), payload
        code: str = payload["errors"][0]["extensions"]["code"]
        return code


@pytest.fixture
def new_user(server: LiveServer) -> Callable[[], GraphQLClient]:
    """A client for a brand-new user on the default server."""

    def make() -> GraphQLClient:
        return server.client(token_for(f"user-{uuid.uuid4()}"))

    return make


@pytest.fixture
def alice(new_user: Callable[[], GraphQLClient]) -> GraphQLClient:
    return new_user()


@pytest.fixture
def bob(new_user: Callable[[], GraphQLClient]) -> GraphQLClient:
    return new_user()


ROOT = Path(__file__).resolve().parent.parent
