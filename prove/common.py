"""Shared kit of the reliability proofs: real server processes, tokens, databases, a
throwaway PostgreSQL cluster, and figures.

Everything runs on loopback. The shared PostgreSQL on 5432 is only ever used to create and
drop this run's own database; faults are played on a cluster this module creates itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import asyncpg
import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent

from core.auth import create_token  # noqa: E402
from core.config import Settings  # noqa: E402

SECRET = "prove-secret-" + "x" * 40
#: the shared cluster: only used to create and drop this run's database
ADMIN_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
).replace("+asyncpg", "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def token(subject: str, secret: str = SECRET, ttl: timedelta = timedelta(hours=2)) -> str:
    settings = Settings(_env_file=None, jwt_secret=secret, environment="test")  # type: ignore[call-arg]
    return create_token(settings, subject, ttl)


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def fresh_database(admin_url: str = ADMIN_URL, prefix: str = "taskchat_prove") -> str:
    """A new, empty database next to `admin_url`'s; returns its SQLAlchemy URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return (
        make_url(admin_url)
        .set(drivername="postgresql+asyncpg", database=name)
        .render_as_string(hide_password=False)
    )


async def drop_database(url: str, admin_url: str = ADMIN_URL) -> None:
    name = make_url(url).database
    admin = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# --------------------------------------------------------------------------- server


class ServerProcess:
    """`python main.py serve` (migrations, then uvicorn with uvloop) in its own process
    group, logs to a file."""

    def __init__(
        self, database_url: str, env: dict[str, str] | None = None, log_path: Path | None = None
    ) -> None:
        self.port = free_port()
        self.database_url = database_url
        self.log_path = log_path or Path(
            tempfile.mkstemp(prefix="taskchat-prove-", suffix=".log")[1]
        )
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "JWT_SECRET": SECRET,
            "ENVIRONMENT": "test",
            "AGENT_PROVIDER": "offline",
            "RATE_LIMIT_PER_MINUTE": "100000",
            "WS_MAX_CONNECTIONS_PER_USER": "1000",
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    async def start(self, timeout: float = 60) -> Self:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "main.py", "serve"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited: {self.logs()[-2000:]}")
                try:
                    if (await http.get("/health")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("server did not start in time")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- clients


@dataclass
class Tally:
    """Requests, outcomes by code and latencies of a run."""

    requests: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def record(self, outcome: str, seconds: float) -> None:
        self.requests += 1
        self.outcomes[outcome] += 1
        self.latencies.append(seconds)

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000

    @property
    def errors(self) -> dict[str, int]:
        return {code: n for code, n in sorted(self.outcomes.items()) if code != "OK"}

    def summary(self) -> str:
        return (
            f"requests {self.requests}  errors {self.errors or 'none'}  "
            f"p50 {self.percentile(0.5):.1f} ms  p99 {self.percentile(0.99):.1f} ms"
        )


def outcome_of(response: httpx.Response) -> tuple[str, dict[str, Any] | None]:
    """("OK" | a contract code | "HTTP_5xx"…, payload)."""
    try:
        payload = response.json()
    except ValueError:
        return f"HTTP_{response.status_code}", None
    if response.status_code >= 500:
        return f"HTTP_{response.status_code}", payload if isinstance(payload, dict) else None
    if not isinstance(payload, dict):
        return f"HTTP_{response.status_code}", None
    errors = payload.get("errors") or []
    if errors:
        code = (errors[0].get("extensions") or {}).get("code", "NO_CODE")
        return str(code), payload
    if response.status_code != 200:
        return f"HTTP_{response.status_code}", payload
    return "OK", payload


async def gql(
    http: httpx.AsyncClient,
    tally: Tally | None,
    auth: str,
    query: str,
    variables: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any] | None]:
    started = time.perf_counter()
    try:
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {auth}"},
        )
        outcome, payload = outcome_of(response)
    except httpx.TimeoutException:
        outcome, payload = "CLIENT_TIMEOUT", None
    except httpx.TransportError:
        outcome, payload = "TRANSPORT_ERROR", None
    if tally is not None:
        tally.record(outcome, time.perf_counter() - started)
    return outcome, payload


# --------------------------------------------------------------------------- throwaway cluster


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    which = shutil.which("pg_ctl")
    if which:
        return Path(which).parent
    raise RuntimeError("PostgreSQL server binaries (pg_ctl, initdb) not found")


class ThrowawayCluster:
    """A PostgreSQL cluster of our own on a free port, in a temporary directory, run as the
    `postgres` user when we are root. Stopping it hurts nobody else."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="taskchat-prove-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> Self:
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        return self

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=300"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def destroy(self) -> None:
        if self.running():
            with contextlib.suppress(subprocess.CalledProcessError):
                self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.init()
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()
