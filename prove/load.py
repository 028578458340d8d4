"""Load, nothing lost: concurrent virtual users against a real server on PostgreSQL.

    python -m prove.load                       # full: 200 users for 60 s
    python -m prove.load --users 20 --seconds 3 --seed 7   # what `make test` runs

Each virtual user (seeded, bounded loop) chats with the offline agent through sendMessage
(the agent adds, completes and deletes tasks), retries a send with the same
clientMessageId (sometimes concurrently), pages its history backwards, and changes tasks
through the task mutations. Afterwards the database is checked:

- every acknowledged message exists exactly once (and every retry answered the same ids);
- every question has at most one live reply; no run is left RUNNING;
- no orphan rows (messages, runs and tasks all point at rows that exist);
- each user's task count equals the creations minus the deletions that succeeded (by
  mutation or by a tool call), unless an unanswered request leaves room, which is counted.

Prints requests, errors by code, p50/p99 and the check. Exit status 1 if the check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from core.ids import parse_global_id
from prove.common import (
    ServerProcess,
    Tally,
    ThrowawayCluster,
    asyncpg_dsn,
    fresh_database,
    gql,
    token,
)

SEND = """mutation($input: SendMessageInput!) { sendMessage(input: $input) {
  conversation { id } userMessage { id clientMessageId } message { id toolCalls { name ok } } } }"""
HISTORY = """query($id: ID!, $before: String) { conversation(id: $id) {
  messages(last: 10, before: $before) { edges { node { id role } }
  pageInfo { hasPreviousPage startCursor } } } }"""
CREATE_TASK = "mutation($t: String!) { createTask(input: {title: $t}) { task { id } } }"
COMPLETE_TASK = "mutation($id: ID!) { completeTask(input: {id: $id}) { task { id status } } }"
DELETE_TASK = "mutation($id: ID!) { deleteTask(input: {id: $id}) { deletedId } }"
TASKS = "{ tasks(first: 20) { edges { node { id title status } } } }"


@dataclass
class Ack:
    client_message_id: str
    conversation_id: str
    user_message_id: str
    reply_id: str


@dataclass
class UserLedger:
    """What the server acknowledged to one virtual user."""

    subject: str
    acks: dict[str, Ack] = field(default_factory=dict)
    replies_seen: set[str] = field(default_factory=set)
    created: int = 0
    deleted: int = 0
    #: requests that may have changed tasks but got no answer (timeout, transport)
    ambiguous: int = 0
    mismatched_retries: int = 0


@dataclass
class CheckResult:
    problems: list[str]
    figures: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        facts = "  ".join(f"{k} {v}" for k, v in self.figures.items())
        verdict = "PASS" if self.ok else "FAIL: " + "; ".join(self.problems[:10])
        return f"check {verdict}\n  {facts}"


#: outcomes that leave it open whether a write happened
UNANSWERED = frozenset({"CLIENT_TIMEOUT", "TRANSPORT_ERROR"})


class VirtualUser:
    def __init__(
        self,
        index: int,
        run: str,
        seed: int,
        http: httpx.AsyncClient,
        tally: Tally,
        unanswered: frozenset[str] = UNANSWERED,
    ) -> None:
        self.unanswered = unanswered
        self.rng = random.Random(seed * 100_003 + index)
        self.ledger = UserLedger(f"load-{run}-{index}")
        self.auth = token(self.ledger.subject)
        self.http = http
        self.tally = tally
        self.conversation: str | None = None
        self.titles: list[str] = []
        self.task_ids: list[str] = []
        self.counter = 0

    def _title(self) -> str:
        self.counter += 1
        return f"chore {self.ledger.subject} {self.counter}"

    def _absorb(self, payload: dict[str, Any], cmid: str) -> None:
        sent = payload["data"]["sendMessage"]
        ack = Ack(
            cmid,
            sent["conversation"]["id"],
            sent["userMessage"]["id"],
            sent["message"]["id"],
        )
        first = self.ledger.acks.setdefault(cmid, ack)
        if first != ack:
            self.ledger.mismatched_retries += 1
        self.conversation = ack.conversation_id
        if ack.reply_id in self.ledger.replies_seen:
            return
        self.ledger.replies_seen.add(ack.reply_id)
        for call in sent["message"]["toolCalls"]:
            if call["ok"] and call["name"] == "add_task":
                self.ledger.created += 1
            elif call["ok"] and call["name"] == "delete_task":
                self.ledger.deleted += 1

    async def send(self, content: str, cmid: str | None = None, copies: int = 1) -> None:
        cmid = cmid or uuid.uuid4().hex
        variables: dict[str, Any] = {"content": content, "clientMessageId": cmid}
        if self.conversation is not None:
            variables["conversationId"] = self.conversation
        results = await asyncio.gather(
            *(
                gql(self.http, self.tally, self.auth, SEND, {"input": variables})
                for _ in range(copies)
            )
        )
        for outcome, payload in results:
            if outcome == "OK" and payload is not None:
                self._absorb(payload, cmid)
            elif outcome in self.unanswered:
                self.ledger.ambiguous += 1
        if self.rng.random() < 0.3:
            # the client did not see the answer (it thinks): retry with the same key
            outcome, payload = await gql(
                self.http, self.tally, self.auth, SEND, {"input": variables}
            )
            if outcome == "OK" and payload is not None:
                self._absorb(payload, cmid)
            elif outcome in self.unanswered:
                self.ledger.ambiguous += 1

    async def chat(self) -> None:
        roll = self.rng.random()
        if roll < 0.4 or not self.titles:
            title = self._title()
            self.titles.append(title)
            await self.send(f"add a task to {title}", copies=2 if self.rng.random() < 0.2 else 1)
        elif roll < 0.6:
            await self.send(f"complete {self.rng.choice(self.titles)}")
        elif roll < 0.8:
            title = self.titles.pop(self.rng.randrange(len(self.titles)))
            await self.send(f"delete {title}")
        else:
            await self.send("list my tasks")

    async def page_history(self) -> None:
        if self.conversation is None:
            return
        before: str | None = None
        for _ in range(3):
            outcome, payload = await gql(
                self.http,
                self.tally,
                self.auth,
                HISTORY,
                {"id": self.conversation, "before": before},
            )
            if outcome != "OK" or payload is None:
                return
            page = payload["data"]["conversation"]["messages"]["pageInfo"]
            if not page["hasPreviousPage"]:
                return
            before = page["startCursor"]

    async def change_tasks(self) -> None:
        roll = self.rng.random()
        if roll < 0.5 or not self.task_ids:
            outcome, payload = await gql(
                self.http, self.tally, self.auth, CREATE_TASK, {"t": self._title()}
            )
            if outcome == "OK" and payload is not None:
                self.ledger.created += 1
                self.task_ids.append(payload["data"]["createTask"]["task"]["id"])
            elif outcome in self.unanswered:
                self.ledger.ambiguous += 1
        elif roll < 0.75:
            await gql(
                self.http,
                self.tally,
                self.auth,
                COMPLETE_TASK,
                {"id": self.rng.choice(self.task_ids)},
            )
        else:
            task_id = self.task_ids.pop(self.rng.randrange(len(self.task_ids)))
            outcome, _ = await gql(self.http, self.tally, self.auth, DELETE_TASK, {"id": task_id})
            if outcome == "OK":
                self.ledger.deleted += 1
            elif outcome in self.unanswered:
                self.ledger.ambiguous += 1

    async def run(self, deadline: float, max_actions: int) -> None:
        for _ in range(max_actions):
            if time.monotonic() >= deadline:
                return
            roll = self.rng.random()
            if roll < 0.5:
                await self.chat()
            elif roll < 0.7:
                await self.page_history()
            elif roll < 0.9:
                await self.change_tasks()
            else:
                await gql(self.http, self.tally, self.auth, TASKS)


async def drive(
    base_url: str,
    users: int,
    seconds: float,
    seed: int,
    max_actions: int = 10_000,
    timeout: float = 30,
    unanswered: frozenset[str] = UNANSWERED,
) -> tuple[Tally, list[UserLedger]]:
    tally = Tally()
    run = uuid.uuid4().hex[:8]
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as http:
        vus = [VirtualUser(i, run, seed, http, tally, unanswered) for i in range(users)]
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(vu.run(deadline, max_actions) for vu in vus))
    return tally, [vu.ledger for vu in vus]


def _uuid(global_id: str) -> uuid.UUID:
    return parse_global_id(global_id)[1]


async def check_database(database_url: str, ledgers: list[UserLedger]) -> CheckResult:
    """The invariants, read straight from the tables."""
    problems: list[str] = []
    figures: Counter[str] = Counter()
    db = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        subjects = [ledger.subject for ledger in ledgers]
        user_ids = {
            row["subject"]: row["id"]
            for row in await db.fetch(
                "SELECT id, subject FROM users WHERE subject = ANY($1)", subjects
            )
        }
        for ledger in ledgers:
            figures["acknowledged"] += len(ledger.acks)
            if ledger.mismatched_retries:
                problems.append(
                    f"{ledger.subject}: {ledger.mismatched_retries} retries answered other ids"
                )
            user_id = user_ids.get(ledger.subject)
            for ack in ledger.acks.values():
                rows = await db.fetch(
                    "SELECT id FROM messages WHERE user_id = $1 AND client_message_id = $2"
                    " AND role = 'USER' AND deleted_at IS NULL",
                    user_id,
                    ack.client_message_id,
                )
                if [r["id"] for r in rows] != [_uuid(ack.user_message_id)]:
                    problems.append(f"message {ack.client_message_id}: {len(rows)} rows")
                reply = await db.fetchrow(
                    "SELECT parent_id FROM messages WHERE id = $1 AND deleted_at IS NULL",
                    _uuid(ack.reply_id),
                )
                if reply is None or reply["parent_id"] != _uuid(ack.user_message_id):
                    problems.append(f"reply of {ack.client_message_id} missing")
            live = await db.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1", user_id)
            expected = ledger.created - ledger.deleted
            if ledger.ambiguous == 0:
                figures["users_exact"] += 1
                if live != expected:
                    problems.append(f"{ledger.subject}: {live} tasks, expected {expected}")
            elif abs(live - expected) > ledger.ambiguous:
                problems.append(
                    f"{ledger.subject}: {live} tasks, expected {expected} ± {ledger.ambiguous}"
                )
            figures["tasks_expected"] += expected
            figures["tasks_live"] += live
        checks = {
            "questions_with_two_live_replies": """SELECT count(*) FROM (SELECT parent_id FROM messages
                WHERE role = 'ASSISTANT' AND deleted_at IS NULL AND status IN ('COMPLETED', 'STOPPED') AND parent_id IS NOT NULL
                GROUP BY parent_id HAVING count(*) > 1) AS doubled""",
            "duplicate_client_message_ids": """SELECT count(*) FROM (SELECT 1 FROM messages
                WHERE client_message_id IS NOT NULL AND role = 'USER'
                GROUP BY user_id, conversation_id, client_message_id HAVING count(*) > 1) AS d""",
            "orphan_messages": """SELECT count(*) FROM messages m
                LEFT JOIN conversations c ON c.id = m.conversation_id WHERE c.id IS NULL""",
            "orphan_replies": """SELECT count(*) FROM messages m LEFT JOIN messages q
                ON q.id = m.parent_id WHERE m.parent_id IS NOT NULL AND q.id IS NULL""",
            "orphan_runs": """SELECT count(*) FROM agent_runs r LEFT JOIN messages q
                ON q.id = r.user_message_id WHERE q.id IS NULL""",
            "orphan_tasks": """SELECT count(*) FROM tasks t LEFT JOIN users u
                ON u.id = t.user_id WHERE u.id IS NULL""",
            "runs_left_running": "SELECT count(*) FROM agent_runs WHERE status = 'RUNNING'",
            "questions_without_reply_or_failed_run": """SELECT count(*) FROM messages q
                WHERE q.role = 'USER' AND NOT EXISTS (SELECT 1 FROM messages a
                  WHERE a.parent_id = q.id AND a.deleted_at IS NULL)
                AND NOT EXISTS (SELECT 1 FROM agent_runs r WHERE r.user_message_id = q.id
                  AND r.status IN ('FAILED', 'CANCELLED'))""",
        }
        for name, statement in checks.items():
            count = int(await db.fetchval(statement))
            if count:
                problems.append(f"{name}: {count}")
        figures["messages"] = int(await db.fetchval("SELECT count(*) FROM messages"))
        figures["runs"] = int(await db.fetchval("SELECT count(*) FROM agent_runs"))
    finally:
        await db.close()
    return CheckResult(problems, dict(figures))


@dataclass
class LoadReport:
    tally: Tally
    check: CheckResult
    seconds: float
    users: int

    def summary(self) -> str:
        rate = self.tally.requests / self.seconds if self.seconds else 0
        return (
            f"load: {self.users} users, {self.seconds:.1f} s, {rate:.0f} req/s\n"
            f"  {self.tally.summary()}\n{self.check.summary()}"
        )


async def run_load(users: int, seconds: float, seed: int, **env: str) -> LoadReport:
    """A throwaway PostgreSQL cluster (so the run neither competes for the shared one's
    connections nor disturbs it), a server process on it, the users, the check."""
    with ThrowawayCluster() as cluster:
        url = await fresh_database(cluster.admin_url)
        pool = str(min(40, max(10, users // 5)))
        async with ServerProcess(url, {"DB_POOL_SIZE": pool, **env}) as server:
            started = time.monotonic()
            tally, ledgers = await drive(server.url, users, seconds, seed)
            elapsed = time.monotonic() - started
        check = await check_database(url, ledgers)
    return LoadReport(tally, check, elapsed, users)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    report = asyncio.run(run_load(args.users, args.seconds, args.seed))
    print(report.summary())
    return 0 if report.check.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
