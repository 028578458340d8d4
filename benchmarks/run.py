"""Benchmarks: figures printed side by side, never asserted (see README, Benchmarks).

    python benchmarks/run.py [--seconds 5] [--only list,turn,idle,fanout]

Starts real server processes (`python main.py serve`, uvloop + httptools) on SQLite and
on PostgreSQL and measures, from a separate client process:
- list:   simple list queries per second on one server worker (concurrency 16)
- turn:   sendMessage round trip with the offline agent (server-side turn overhead)
- idle:   server memory for 1,000 idle messageAdded subscriptions
- fanout: delivery latency of a message sent through instance B to a subscriber on A
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.auth import create_token  # noqa: E402
from core.config import Settings  # noqa: E402

SECRET = "benchmark-secret-" + "x" * 40
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def token(subject: str) -> str:
    settings = Settings(_env_file=None, jwt_secret=SECRET, environment="test")  # type: ignore[call-arg]
    return create_token(settings, subject, __import__("datetime").timedelta(hours=1))


async def fresh_pg_database() -> str:
    import asyncpg

    name = f"taskchat_bench_{os.getpid()}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


@asynccontextmanager
async def server(database_url: str, **env: str):  # type: ignore[no-untyped-def]
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "main.py", "serve"],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "JWT_SECRET": SECRET,
            # as deployed: JSON logs, one line per operation
            "ENVIRONMENT": "production",
            "AGENT_PROVIDER": "offline",
            "RATE_LIMIT_PER_MINUTE": "100000",
            "WS_MAX_CONNECTIONS_PER_USER": "5000",
            "WS_MAX_SUBSCRIPTIONS_PER_CONNECTION": "5000",
            "PORT": str(port),
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base) as http:
        for _ in range(300):
            try:
                if (await http.get("/health")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    try:
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(10)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def gql(
    http: httpx.AsyncClient, auth: str, query: str, variables: dict[str, Any] | None = None
) -> Any:
    response = await http.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": auth},
    )
    payload = response.json()
    if payload.get("errors"):
        raise RuntimeError(payload["errors"])
    return payload["data"]


LIST_QUERY = "{ tasks(first: 20) { edges { node { id title status } } } }"


async def bench_list_wrk(base: str, seconds: float, concurrency: int = 16) -> dict[str, float]:
    """The same list query driven by wrk (C, one thread): the client costs little, so the
    figure is close to what one server process can do."""
    auth = f"Bearer {token('bench-list')}"
    script = Path(tempfile.mkdtemp()) / "list.lua"
    body = json.dumps({"query": LIST_QUERY})
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "{auth}"\n'
    )
    output = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{int(seconds)}s",
            "-s",
            str(script),
            f"{base}/graphql",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("Requests/sec:"):
            figures["req_per_s"] = float(line.split()[1])
        if "Non-2xx" in line:
            figures["non_2xx"] = float(line.split()[-1])
    return figures


async def bench_list(base: str, seconds: float, concurrency: int = 16) -> dict[str, float]:
    auth = f"Bearer {token('bench-list')}"
    async with httpx.AsyncClient(
        base_url=base, limits=httpx.Limits(max_connections=concurrency)
    ) as http:
        for i in range(20):
            await gql(
                http,
                auth,
                "mutation($t: String!) { createTask(input: {title: $t}) { task { id } } }",
                {"t": f"task {i}"},
            )
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await gql(http, auth, LIST_QUERY)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
    }


async def bench_turn(base: str, turns: int = 60) -> dict[str, float]:
    auth = f"Bearer {token('bench-turn-' + uuid.uuid4().hex)}"
    timings: list[float] = []
    async with httpx.AsyncClient(base_url=base) as http:
        data = await gql(
            http, auth, "mutation { createConversation(input: {}) { conversation { id } } }"
        )
        conversation_id = data["createConversation"]["conversation"]["id"]
        for i in range(turns):
            started = time.perf_counter()
            await gql(
                http,
                auth,
                "mutation($c: ID!, $t: String!) { sendMessage(input: {conversationId: $c, content: $t}) { message { id } } }",
                {
                    "c": conversation_id,
                    "t": f"add a task to item {i}" if i % 2 else "list my tasks",
                },
            )
            timings.append(time.perf_counter() - started)
        simple: list[float] = []
        for _ in range(turns):
            started = time.perf_counter()
            await gql(http, auth, "{ me { id } }")
            simple.append(time.perf_counter() - started)
    return {
        "turn_p50_ms": statistics.median(timings) * 1000,
        "turn_p95_ms": sorted(timings)[int(len(timings) * 0.95)] * 1000,
        "simple_query_p50_ms": statistics.median(simple) * 1000,
    }


async def subscribe(
    ws_url: str, auth: str, conversation_id: str, operations: int = 1
) -> websockets.ClientConnection:
    socket_ = await websockets.connect(
        ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    )
    await socket_.send(json.dumps({"type": "connection_init", "payload": {"authorization": auth}}))
    ack = json.loads(await socket_.recv())
    assert ack["type"] == "connection_ack", ack
    for operation in range(operations):
        await socket_.send(
            json.dumps(
                {
                    "id": str(operation + 1),
                    "type": "subscribe",
                    "payload": {
                        "query": "subscription($c: ID!) { messageAdded(conversationId: $c) { id content } }",
                        "variables": {"c": conversation_id},
                    },
                }
            )
        )
    return socket_


async def idle_rss_growth(database_url: str, sockets: int, per_socket: int) -> dict[str, float]:
    """Server memory growth for `sockets` x `per_socket` idle messageAdded subscriptions,
    measured on a fresh server process (RSS does not shrink, so each layout gets its own)."""
    auth = f"Bearer {token('bench-idle')}"
    async with server(database_url) as (base, pid):
        ws_url = base.replace("http", "ws") + "/graphql"
        async with httpx.AsyncClient(base_url=base) as http:
            data = await gql(
                http, auth, "mutation { createConversation(input: {}) { conversation { id } } }"
            )
        conversation_id = data["createConversation"]["conversation"]["id"]
        await asyncio.sleep(0.5)
        before = rss_mb(pid)
        opened = []
        for start in range(0, sockets, 100):
            opened += await asyncio.gather(
                *(
                    subscribe(ws_url, auth, conversation_id, per_socket)
                    for _ in range(start, min(sockets, start + 100))
                )
            )
        await asyncio.sleep(1.5)
        after = rss_mb(pid)
        for socket_ in opened:
            await socket_.close()
    count = sockets * per_socket
    return {
        "rss_before_mb": before,
        "rss_after_mb": after,
        "kb_each": (after - before) * 1024 / count,
    }


async def bench_fanout(database_url: str, rounds: int = 20) -> dict[str, float]:
    auth = f"Bearer {token('bench-fanout')}"
    async with server(database_url) as (base_a, _), server(database_url) as (base_b, _):
        async with httpx.AsyncClient(base_url=base_b) as http:
            data = await gql(
                http, auth, "mutation { createConversation(input: {}) { conversation { id } } }"
            )
            conversation_id = data["createConversation"]["conversation"]["id"]
            socket_ = await subscribe(
                base_a.replace("http", "ws") + "/graphql", auth, conversation_id
            )
            await asyncio.sleep(0.3)
            latencies: list[float] = []
            for i in range(rounds):
                received: asyncio.Future[float] = asyncio.get_running_loop().create_future()

                async def read() -> None:
                    while True:
                        message = json.loads(await socket_.recv())
                        if message.get("type") == "next":
                            content = message["payload"]["data"]["messageAdded"]["content"]
                            if content == f"list my tasks ({i})":
                                received.set_result(time.perf_counter())
                                return

                reader = asyncio.create_task(read())
                # the user message is published as soon as it commits, before the reply
                sent = time.perf_counter()
                await gql(
                    http,
                    auth,
                    "mutation($c: ID!, $t: String!) { sendMessage(input: {conversationId: $c, content: $t}) { message { id } } }",
                    {"c": conversation_id, "t": f"list my tasks ({i})"},
                )
                latencies.append(await asyncio.wait_for(received, 5) - sent)
                await reader
            await socket_.close()
    latencies.sort()
    return {"p50_ms": latencies[len(latencies) // 2] * 1000, "max_ms": latencies[-1] * 1000}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--only", default="list,turn,idle,fanout")
    args = parser.parse_args()
    only = set(args.only.split(","))
    sqlite_url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
    pg_url = await fresh_pg_database()
    results: dict[str, dict[str, Any]] = {}
    for name, url in (("sqlite", sqlite_url), ("postgres", pg_url)):
        async with server(url) as (base, _pid):
            if "list" in only:
                results[f"list/{name} (python client)"] = await bench_list(base, args.seconds)
                if shutil.which("wrk"):
                    results[f"list/{name} (wrk)"] = await bench_list_wrk(base, args.seconds)
            if "turn" in only:
                results[f"turn/{name}"] = await bench_turn(base)
        if "idle" in only:
            results[f"idle/{name} 1000 sockets x 1"] = await idle_rss_growth(url, 1000, 1)
            results[f"idle/{name} 10 sockets x 100"] = await idle_rss_growth(url, 10, 100)
    if "fanout" in only:
        results["fanout/postgres (2 instances)"] = await bench_fanout(pg_url)
    for key, figures in results.items():
        print(f"{key:36s} " + "  ".join(f"{k}={v:,.1f}" for k, v in figures.items()))


if __name__ == "__main__":
    asyncio.run(main())
