"""Faults during load: the database going away, the model misbehaving, the process being
stopped or killed. Each scenario prints what clients saw and what the database holds.

    python -m prove.faults                         # full: every scenario, long windows
    python -m prove.faults --short                 # what `make test` runs, in seconds
    python -m prove.faults --only outage,model,sigterm,kill

The database scenarios run on a throwaway PostgreSQL cluster created here on a free port
(initdb + pg_ctl as the postgres user), never on the shared one:

- outage:  PostgreSQL stopped mid-load, then started again. Requests in the outage must
           fail fast with SERVICE_UNAVAILABLE (+ extensions.retryAfter), /ready is 503, the
           service answers again within 5 s of the restart, and every acknowledged write
           is there afterwards.
- model:   the model (the Groq stand-in, via GROQ_BASE_URL) errors, rate-limits and hangs
           in turns while users chat: AGENT_UNAVAILABLE / AGENT_TIMEOUT, never a 5xx; every
           question ends answered or with a FAILED run.
- sigterm: SIGTERM mid-load: in-flight turns finish (or leave a clean state), open
           WebSockets close with a proper close code, nothing acknowledged is lost.
- kill:    kill -9 mid-burst of turns: only whole turns in the database (each task is
           accounted for by a stored reply's tool call), and a retry with the same
           clientMessageId after a restart completes an interrupted turn exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import websockets

from prove.common import (
    ServerProcess,
    Tally,
    ThrowawayCluster,
    asyncpg_dsn,
    drop_database,
    fresh_database,
    gql,
    token,
)
from prove.load import SEND, UNANSWERED, check_database, drive

CREATE_TASK = "mutation($t: String!) { createTask(input: {title: $t}) { task { id } } }"
#: in an outage a write may have committed before the connection died
OUTAGE_UNANSWERED = UNANSWERED | {"SERVICE_UNAVAILABLE"}
#: problems that an interrupted turn leaves on purpose (question stored, turn not run):
#: a retry with the same clientMessageId runs it (see ARCHITECTURE.md, A turn)
INTERRUPTED = ("runs_left_running", "questions_without_reply_or_failed_run")


@dataclass
class Scenario:
    name: str
    facts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "PASS" if self.ok else "FAIL: " + "; ".join(self.problems[:10])
        facts = "\n".join(f"    {k}: {v}" for k, v in self.facts.items())
        return f"{self.name}: {verdict}\n{facts}"


def _bad_outcomes(tally: Tally) -> dict[str, int]:
    return {
        code: n
        for code, n in tally.outcomes.items()
        if code.startswith("HTTP_5") or code in {"INTERNAL_SERVER_ERROR", "NO_CODE"}
    }


# --------------------------------------------------------------------------- outage


async def outage(users: int, seconds: float, down_seconds: float, seed: int) -> Scenario:
    scenario = Scenario("outage (PostgreSQL stopped and restarted mid-load)")
    with ThrowawayCluster() as cluster:
        url = await fresh_database(cluster.admin_url)
        async with ServerProcess(url, {"DB_POOL_SIZE": "10"}) as server:
            load = asyncio.create_task(
                drive(server.url, users, seconds, seed, timeout=10, unanswered=OUTAGE_UNANSWERED)
            )
            await asyncio.sleep(seconds / 4)
            probes = Tally()
            ready: Counter[int] = Counter()
            retry_after: set[Any] = set()
            auth = token(f"probe-{uuid.uuid4().hex[:8]}")
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                await asyncio.to_thread(cluster.stop, "fast")
                outage_ends = time.monotonic() + down_seconds
                while time.monotonic() < outage_ends:
                    outcome, payload = await gql(http, probes, auth, CREATE_TASK, {"t": "probe"})
                    if payload and payload.get("errors"):
                        retry_after.add(
                            payload["errors"][0].get("extensions", {}).get("retryAfter")
                        )
                    ready[(await http.get("/ready")).status_code] += 1
                    await asyncio.sleep(0.1)
                await asyncio.to_thread(cluster.start)
                restarted = time.monotonic()
                recovered: float | None = None
                while time.monotonic() - restarted < 15:
                    outcome, _ = await gql(http, None, auth, CREATE_TASK, {"t": "after"})
                    if outcome == "OK":
                        recovered = time.monotonic() - restarted
                        break
                    await asyncio.sleep(0.05)
                ready_after = (await http.get("/ready")).status_code
            tally, ledgers = await load
        check = await check_database(url, ledgers)
    codes = dict(probes.outcomes)
    slowest = max(probes.latencies, default=0) * 1000
    scenario.facts.update(
        {
            "load": tally.summary(),
            "requests during outage": f"{probes.requests}, codes {codes}, slowest {slowest:.0f} ms",
            "retryAfter seen": sorted(map(str, retry_after)),
            "/ready during outage": dict(ready),
            "recovered after restart (s)": None if recovered is None else round(recovered, 2),
            "check": check.summary().replace("\n", " "),
        }
    )
    if set(codes) - {"SERVICE_UNAVAILABLE"}:
        scenario.problems.append(f"outage answered {codes}")
    if codes and None in retry_after:
        scenario.problems.append("SERVICE_UNAVAILABLE without retryAfter")
    if slowest > 1000:
        scenario.problems.append(f"an outage request took {slowest:.0f} ms")
    if set(ready) != {503}:
        scenario.problems.append(f"/ready during outage: {dict(ready)}")
    if recovered is None or recovered > 5:
        scenario.problems.append(f"recovery took {recovered}")
    if ready_after != 200:
        scenario.problems.append(f"/ready after restart: {ready_after}")
    if bad := _bad_outcomes(tally):
        scenario.problems.append(f"load saw {bad}")
    scenario.problems += [p for p in check.problems if not p.startswith(INTERRUPTED)]
    return scenario


# --------------------------------------------------------------------------- model


async def model_faults(users: int, window: float, seed: int) -> Scenario:
    from tests.standin.groq_standin import GroqStandIn, Step, error, slow, text

    scenario = Scenario("model faults (errors, rate limits, hangs) mid-load")
    phases: list[tuple[str, Step]] = [
        ("healthy", text("OK.")),
        ("500s", error(500)),
        ("429s", error(429, headers={"retry-after": "0"})),
        ("hangs", slow(window * 4, text("late"))),
        ("healthy again", text("OK.")),
    ]
    by_phase: dict[str, dict[str, int]] = {}
    with ThrowawayCluster() as cluster, GroqStandIn() as standin:
        url = await fresh_database(cluster.admin_url)
        env = {
            "AGENT_PROVIDER": "groq",
            "GROQ_API_KEY": "gsk_prove_fake_key",
            "GROQ_BASE_URL": standin.base_url,
            "AGENT_TIMEOUT_SECONDS": "1",
        }
        async with ServerProcess(url, env) as server:
            all_ledgers = []
            for name, step in phases:
                standin.default_step = step
                tally, ledgers = await drive(server.url, users, window, seed, timeout=10)
                all_ledgers += ledgers
                by_phase[name] = dict(tally.outcomes)
                if bad := _bad_outcomes(tally):
                    scenario.problems.append(f"{name}: {bad}")
            standin.default_step = text("OK.")
        check = await check_database(url, all_ledgers)
    scenario.facts.update({f"{k}": v for k, v in by_phase.items()})
    scenario.facts["check"] = check.summary().replace("\n", " ")
    scenario.problems += check.problems
    for name in ("500s", "429s"):
        if "AGENT_UNAVAILABLE" not in by_phase[name]:
            scenario.problems.append(f"{name}: no AGENT_UNAVAILABLE")
    if "AGENT_TIMEOUT" not in by_phase["hangs"]:
        scenario.problems.append("hangs: no AGENT_TIMEOUT")
    if by_phase["healthy again"].get("OK", 0) == 0:
        scenario.problems.append("no recovery after the model came back")
    return scenario


# --------------------------------------------------------------------------- sigterm


async def _subscriber(ws_url: str, auth: str, conversation: str) -> int | None:
    """Holds a messageAdded subscription until the server closes the socket; its code."""
    async with websockets.connect(
        ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {auth}"}})
        )
        await ws.recv()
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {
                        "query": "subscription($id: ID!) { messageAdded(conversationId: $id) { id } }",
                        "variables": {"id": conversation},
                    },
                }
            )
        )
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await ws.recv()
        return ws.close_code


async def sigterm(users: int, seconds: float, seed: int) -> Scenario:
    scenario = Scenario("SIGTERM during load")
    url = await fresh_database()
    server = await ServerProcess(url).start()
    try:
        auth = token(f"sub-{uuid.uuid4().hex[:8]}")
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            _, payload = await gql(http, None, auth, SEND, {"input": {"content": "hello"}})
            assert payload is not None
            conversation = payload["data"]["sendMessage"]["conversation"]["id"]
        sockets = [
            asyncio.create_task(_subscriber(server.ws_url, auth, conversation)) for _ in range(3)
        ]
        load = asyncio.create_task(drive(server.url, users, seconds, seed, timeout=10))
        await asyncio.sleep(seconds / 2)
        server.signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(server.wait, 30)
        tally, ledgers = await load
        close_codes = [await asyncio.wait_for(s, 10) for s in sockets]
    finally:
        server.stop()
    check = await check_database(url, ledgers)
    await drop_database(url)
    scenario.facts.update(
        {
            "load": tally.summary(),
            "server exit status": exit_code,
            "WebSocket close codes": close_codes,
            "check": check.summary().replace("\n", " "),
        }
    )
    # uvicorn re-raises the signal after its graceful shutdown
    if exit_code not in (0, -signal.SIGTERM):
        scenario.problems.append(f"exit status {exit_code}")
    if "Traceback" in server.logs():
        scenario.problems.append("a traceback in the server's log")
    if any(code not in (1001, 1012) for code in close_codes):
        scenario.problems.append(f"sockets closed with {close_codes}")
    if bad := _bad_outcomes(tally):
        scenario.problems.append(f"load saw {bad}")
    scenario.problems += check.problems
    return scenario


# --------------------------------------------------------------------------- kill -9


async def whole_turn_problems(url: str, subjects: list[str]) -> tuple[list[str], int]:
    """Chat-only users: each user's tasks are exactly the stored replies' successful
    add_task calls minus their delete_task calls. Returns problems and interrupted turns."""
    problems: list[str] = []
    db = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for subject in subjects:
            user = await db.fetchval("SELECT id FROM users WHERE subject = $1", subject)
            if user is None:
                continue
            calls = await db.fetch(
                "SELECT tool_calls FROM messages WHERE user_id = $1 AND role = 'ASSISTANT'"
                " AND status IN ('COMPLETED', 'STOPPED')",
                user,
            )
            net = 0
            for row in calls:
                records = row["tool_calls"]
                for record in json.loads(records) if isinstance(records, str) else records:
                    if record.get("ok") and record.get("name") == "add_task":
                        net += 1
                    elif record.get("ok") and record.get("name") == "delete_task":
                        net -= 1
            live = await db.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1", user)
            if live != net:
                problems.append(f"{subject}: {live} tasks, replies account for {net}")
        interrupted = int(
            await db.fetchval("SELECT count(*) FROM agent_runs WHERE status = 'RUNNING'")
        )
    finally:
        await db.close()
    return problems, interrupted


async def kill9(users: int, seed: int) -> Scenario:
    scenario = Scenario("kill -9 mid-burst of turns")
    url = await fresh_database()
    subjects = [f"burst-{uuid.uuid4().hex[:8]}-{i}" for i in range(users)]
    acked: dict[str, str] = {}
    sent: list[tuple[str, str]] = []
    server = await ServerProcess(url).start()
    outcomes: Counter[str] = Counter()

    async def user(subject: str, http: httpx.AsyncClient) -> None:
        auth = token(subject)
        for i in range(1000):
            cmid = f"{subject}-{i}"
            sent.append((subject, cmid))
            content = f"add a task to burst {i}" if i % 3 else f"delete burst {i - 1}"
            outcome, payload = await gql(
                http, None, auth, SEND, {"input": {"content": content, "clientMessageId": cmid}}
            )
            outcomes[outcome] += 1
            if outcome == "OK" and payload is not None:
                acked[cmid] = payload["data"]["sendMessage"]["userMessage"]["id"]
            elif outcome in UNANSWERED:
                return

    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            burst = asyncio.gather(*(user(s, http) for s in subjects))
            while len(acked) < users * 3:
                await asyncio.sleep(0.01)
            server.signal(signal.SIGKILL)
            await asyncio.to_thread(server.wait, 10)
            await burst
    finally:
        server.stop()
    problems, interrupted = await whole_turn_problems(url, subjects)
    scenario.problems += problems
    # after a restart, a retry of every unanswered send completes its turn exactly once
    lost: list[str] = []
    retried = Counter[str]()
    async with (
        ServerProcess(url) as again,
        httpx.AsyncClient(base_url=again.url, timeout=10) as http,
    ):
        for subject, cmid in sent:
            if cmid in acked:
                continue
            i = int(cmid.rsplit("-", 1)[1])
            content = f"add a task to burst {i}" if i % 3 else f"delete burst {i - 1}"
            outcome, _ = await gql(
                http,
                None,
                token(subject),
                SEND,
                {"input": {"content": content, "clientMessageId": cmid}},
            )
            retried[outcome] += 1
        db = await asyncpg.connect(asyncpg_dsn(url))
        try:
            for cmid in acked:
                n = await db.fetchval(
                    "SELECT count(*) FROM messages WHERE client_message_id = $1 AND role = 'USER'",
                    cmid,
                )
                if n != 1:
                    lost.append(cmid)
            doubled = await db.fetchval(
                """SELECT count(*) FROM (SELECT parent_id FROM messages WHERE role = 'ASSISTANT'
                AND deleted_at IS NULL AND status IN ('COMPLETED', 'STOPPED') AND parent_id IS NOT NULL GROUP BY parent_id
                HAVING count(*) > 1) AS d"""
            )
            running = await db.fetchval("SELECT count(*) FROM agent_runs WHERE status = 'RUNNING'")
        finally:
            await db.close()
    after, _ = await whole_turn_problems(url, subjects)
    await drop_database(url)
    scenario.facts.update(
        {
            "sends before the kill": dict(outcomes),
            "acknowledged": len(acked),
            "interrupted turns (RUNNING after the kill)": interrupted,
            "retries after restart": dict(retried),
            "runs still RUNNING after retries": running,
        }
    )
    if lost:
        scenario.problems.append(f"{len(lost)} acknowledged messages not stored exactly once")
    if doubled:
        scenario.problems.append(f"{doubled} questions with two live replies")
    if running:
        scenario.problems.append(f"{running} runs still RUNNING after the retries")
    if set(retried) - {"OK"}:
        scenario.problems.append(f"retries answered {dict(retried)}")
    scenario.problems += [f"after retries: {p}" for p in after]
    return scenario


# --------------------------------------------------------------------------- main


async def run(only: set[str], short: bool, seed: int) -> list[Scenario]:
    users = 10 if short else 100
    results: list[Scenario] = []
    if "outage" in only:
        results.append(await outage(users, 4 if short else 30, 1.5 if short else 10, seed))
    if "model" in only:
        results.append(await model_faults(5 if short else 50, 1.5 if short else 8, seed))
    if "sigterm" in only:
        results.append(await sigterm(users, 3 if short else 20, seed))
    if "kill" in only:
        results.append(await kill9(5 if short else 50, seed))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description="faults during load")
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", default="outage,model,sigterm,kill")
    args = parser.parse_args()
    results = asyncio.run(run(set(args.only.split(",")), args.short, args.seed))
    for scenario in results:
        print(scenario.summary())
    return 0 if all(s.ok for s in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
