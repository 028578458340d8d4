"""What one offline chat turn costs the server (issue 14, S3): statements, round trips,
transactions and CPU per `sendMessage`, with the statements of one turn listed.

    python -m bench.turn_cost --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/NAME
        [--turns 50] [--concurrency 1] [--profile [--profile-out FILE]]

The database NAME is created for the run and dropped after it (SQLite: a temporary file).
Two servers of the real app (`main.create_app`) run in this process, on real uvicorn:
1. a counting one, connected through bench/pgproxy.py (PostgreSQL): round trips,
   statements (`Q` + `E` messages) and transactions on the wire, and SQLAlchemy's view
   (cursor executes, begins, commits, rollbacks, pool checkouts) on every engine; turns
   are sent one at a time, after a warm-up;
2. a timed one, connected directly: a client in a child process sends the turns
   (`--concurrency` at once, each user in a conversation of their own), so this
   process's `time.process_time()` is the server's CPU alone.
`--profile` runs the timed turns under cProfile and prints the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import pstats
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import Pool

from bench.pgproxy import CountingProxy
from core.auth import create_token
from core.config import Settings
from main import create_app, run_migrations

SECRET = "turn-cost-secret-" + "x" * 40
SEND = (
    "mutation($c: ID!, $t: String!) { sendMessage(input: {conversationId: $c, content: $t})"
    " { message { id role content } } }"
)
CREATE_CONVERSATION = "mutation { createConversation(input: {}) { conversation { id } } }"
CREATE_TASK = "mutation($t: String!) { createTask(input: {title: $t}) { task { id } } }"
CONTENT = "list my tasks"
TASKS_PER_USER = 5
WARM_UP_TURNS = 3


# --- what SQLAlchemy sees -----------------------------------------------------------


@dataclass
class EngineCounts:
    executes: int = 0
    begins: int = 0
    commits: int = 0
    rollbacks: int = 0
    savepoints: int = 0
    checkouts: int = 0
    statements: Counter[str] = field(default_factory=Counter)

    @property
    def round_trips(self) -> int:
        # asyncpg sends BEGIN on the first statement and COMMIT/ROLLBACK on their own
        return self.executes + self.begins + self.commits + self.rollbacks


_SPACES = re.compile(r"\s+")


def _shape(statement: str) -> str:
    text = _SPACES.sub(" ", statement).strip()
    return text if len(text) <= 160 else text[:157] + "..."


@contextlib.contextmanager
def counting_engines() -> Iterator[EngineCounts]:
    """Counts on every engine (the app's, the turn locks', the journal's, the broker's)."""
    counts = EngineCounts()

    def on_execute(*args: Any) -> None:
        counts.executes += 1
        counts.statements[_shape(args[2])] += 1

    def on_begin(_connection: Any) -> None:
        counts.begins += 1

    def on_commit(_connection: Any) -> None:
        counts.commits += 1

    def on_rollback(_connection: Any) -> None:
        counts.rollbacks += 1

    def on_savepoint(*_args: Any) -> None:
        counts.savepoints += 1

    def on_checkout(*_args: Any) -> None:
        counts.checkouts += 1

    listeners: list[tuple[Any, str, Any]] = [
        (Engine, "before_cursor_execute", on_execute),
        (Engine, "begin", on_begin),
        (Engine, "commit", on_commit),
        (Engine, "rollback", on_rollback),
        (Engine, "savepoint", on_savepoint),
        (Pool, "checkout", on_checkout),
    ]
    for target, name, listener in listeners:
        event.listen(target, name, listener)
    try:
        yield counts
    finally:
        for target, name, listener in listeners:
            event.remove(target, name, listener)


# --- servers and data -----------------------------------------------------------------


def settings_for(database_url: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        database_direct_url=database_url,
        environment="production",
        jwt_secret=SECRET,
        agent_provider="offline",
        groq_api_key=None,
        rate_limit_per_minute=1_000_000,
        log_level="warning",
    )


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


@contextlib.asynccontextmanager
async def scratch_database(database_url: str) -> AsyncIterator[str]:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite+aiosqlite:///{Path(directory) / 'turn_cost.db'}"
        return
    name = url.database or f"taskchat_turn_cost_{uuid.uuid4().hex[:8]}"
    if name == "taskchat_bench":
        raise SystemExit("taskchat_bench is the shared bench database: name a scratch one")

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password,
            database="postgres",
        )
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def via_proxy(database_url: str, port: int) -> str:
    return make_url(database_url).set(port=port).render_as_string(hide_password=False)


async def post(http: httpx.AsyncClient, token: str, query: str, variables: Any = None) -> Any:
    response = await http.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
    )
    payload = response.json()
    if payload.get("errors"):
        raise RuntimeError(payload["errors"])
    return payload["data"]


async def seed_users(base: str, settings: Settings, users: int) -> list[tuple[str, str]]:
    """(token, conversation id) per user, each user with a few tasks to list."""
    pairs: list[tuple[str, str]] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for n in range(users):
            token = create_token(settings, f"turn-cost-{uuid.uuid4()}", timedelta(hours=2))
            for i in range(TASKS_PER_USER):
                await post(http, token, CREATE_TASK, {"t": f"task {n}.{i}"})
            data = await post(http, token, CREATE_CONVERSATION)
            pairs.append((token, data["createConversation"]["conversation"]["id"]))
    return pairs


async def send_turns(base: str, pairs: list[tuple[str, str]], turns: int, concurrency: int) -> None:
    """`turns` turns in all, `concurrency` users at once (one turn at a time each)."""
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:

        async def user(index: int, count: int) -> None:
            token, conversation = pairs[index]
            for _ in range(count):
                data = await post(http, token, SEND, {"c": conversation, "t": CONTENT})
                message = data["sendMessage"]["message"]
                assert message["role"] == "ASSISTANT" and message["content"], message

        per_user = [
            turns // concurrency + (1 if i < turns % concurrency else 0) for i in range(concurrency)
        ]
        await asyncio.gather(*(user(i, count) for i, count in enumerate(per_user) if count))


# --- the two phases ---------------------------------------------------------------------


async def count_phase(database_url: str, turns: int) -> None:
    is_postgres = make_url(database_url).get_backend_name() == "postgresql"
    proxy = CountingProxy(
        make_url(database_url).host or "127.0.0.1", make_url(database_url).port or 5432
    )
    url = database_url
    if is_postgres:
        url = via_proxy(database_url, await proxy.start())
    settings = settings_for(url)
    try:
        async with serving(settings) as base:
            pairs = await seed_users(base, settings, 1)
            await send_turns(base, pairs, WARM_UP_TURNS, 1)
            proxy.reset()
            with counting_engines() as counts:
                await send_turns(base, pairs, turns, 1)
            wire = proxy.reset()
            with counting_engines() as one:
                await send_turns(base, pairs, 1, 1)
    finally:
        await proxy.stop()
    print(f"per turn, over {turns} turns one at a time (after {WARM_UP_TURNS} to warm up):")
    if is_postgres:
        print(
            f"  wire:       {wire.statements / turns:6.1f} statements"
            f"  {wire.round_trips / turns:6.1f} round trips"
            f"  {wire.transactions / turns:6.1f} transactions"
        )
    print(
        f"  sqlalchemy: {counts.executes / turns:6.1f} executes"
        f"  {counts.round_trips / turns:6.1f} round trips (executes + begins + ends)"
        f"  {counts.begins / turns:6.1f} begins"
        f"  {counts.commits / turns:5.1f} commits  {counts.rollbacks / turns:5.1f} rollbacks"
        f"  {counts.savepoints / turns:5.1f} savepoints  {counts.checkouts / turns:5.1f} checkouts"
    )
    print("\nthe statements of one turn (count  statement):")
    for statement, number in one.statements.most_common():
        print(f"  {number:3d}  {statement}")
    print(
        f"  ---  {one.executes} executes, {one.begins} begins, {one.commits} commits,"
        f" {one.rollbacks} rollbacks, {one.checkouts} checkouts"
    )


async def time_phase(
    database_url: str, turns: int, concurrency: int, profile: bool, profile_out: str | None
) -> None:
    settings = settings_for(database_url)
    async with serving(settings) as base:
        pairs = await seed_users(base, settings, concurrency)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as plan:
            json.dump({"base": base, "pairs": pairs}, plan)
        # warm up: connections, caches, prepared statements
        await run_client(plan.name, min(turns, 2 * concurrency), concurrency)
        profiler = cProfile.Profile() if profile else None
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        await run_client(plan.name, turns, concurrency)
        if profiler is not None:
            profiler.disable()
        cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started_wall
        Path(plan.name).unlink()
    print(
        f"\nserver CPU: {cpu / turns * 1000:.2f} ms per turn"
        f" ({turns} turns, {concurrency} at once; {turns / wall:.0f} turns/s wall,"
        f" {turns / cpu:.0f} turns per CPU second)"
        + (" [under cProfile: inflated]" if profile else "")
    )
    if profiler is not None:
        if profile_out:
            profiler.dump_stats(profile_out)  # for pstats: callers, callees
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats(60)
        print(out.getvalue())


async def run_client(plan: str, turns: int, concurrency: int) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.turn_cost",
        "--client",
        plan,
        "--turns",
        str(turns),
        "--concurrency",
        str(concurrency),
    )
    if await child.wait() != 0:
        raise RuntimeError("the client failed")


async def client_main(plan_path: str, turns: int, concurrency: int) -> None:
    plan = json.loads(Path(plan_path).read_text())
    pairs = [(token, conversation) for token, conversation in plan["pairs"]]
    await send_turns(plan["base"], pairs, turns, concurrency)


async def main(args: argparse.Namespace) -> None:
    if args.client:
        await client_main(args.client, args.turns, args.concurrency)
        return
    async with scratch_database(args.database_url) as url:
        await asyncio.to_thread(run_migrations, url)
        await count_phase(url, args.turns)
        await time_phase(url, args.turns, args.concurrency, args.profile, args.profile_out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="sqlite+aiosqlite://")
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-out", help="with --profile: the cProfile stats to this file")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
