"""The data lifecycle: archive what went quiet, purge what was deleted long ago, and one
user's data exported or erased (the `archive`, `purge`, `export-user` and `erase-user`
commands).

Each works in batches, each batch its own short transaction, so that a running server
is never kept waiting long; each is idempotent (a second run finds nothing left to do)
and may be interrupted and run again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.ids import to_global_id
from db import lifecycle as lifecycle_queries
from db import users as user_queries
from db.models import AgentRun, Conversation, Message, ReplyFeedback, Task, User
from db.transactions import write_transaction
from db.types import utcnow
from live.broker import Broker

BATCH_SIZE = 500

Sessions = async_sessionmaker[AsyncSession]


@dataclass(slots=True)
class ArchiveReport:
    conversations: int = 0

    def __str__(self) -> str:
        return f"archived {self.conversations} conversations"


@dataclass(slots=True)
class PurgeReport:
    conversations: int = 0
    messages: int = 0
    agent_runs: int = 0

    def __str__(self) -> str:
        return (
            f"purged {self.conversations} conversations, {self.messages} messages, "
            f"{self.agent_runs} agent runs"
        )


@dataclass(slots=True)
class EraseReport:
    subject: str
    found: bool = False
    conversations: int = 0
    messages: int = 0
    tasks: int = 0
    agent_runs: int = 0

    def __str__(self) -> str:
        if not self.found:
            return f"erased nothing: no user {self.subject!r}"
        return (
            f"erased user {self.subject!r}: {self.conversations} conversations, "
            f"{self.messages} messages, {self.tasks} tasks, {self.agent_runs} agent runs"
        )


async def archive_inactive(
    sessions: Sessions, broker: Broker, inactive_for: timedelta, *, batch_size: int = BATCH_SIZE
) -> ArchiveReport:
    """ACTIVE conversations with no activity (no message, rename or status change) for
    `inactive_for` become ARCHIVED."""
    cutoff = utcnow() - inactive_for
    report = ArchiveReport()
    async with sessions() as session:
        while True:
            async with write_transaction(session):
                archived = await lifecycle_queries.archive_inactive_batch(
                    session, cutoff, batch_size
                )
            if not archived:
                return report
            report.conversations += len(archived)
            for conversation_id in archived:
                await broker.publish(conversation_id)


async def purge_deleted(
    sessions: Sessions, deleted_for: timedelta, *, batch_size: int = BATCH_SIZE
) -> PurgeReport:
    """Hard-deletes what was soft-deleted more than `deleted_for` ago: messages (replaced
    replies, and those of deleted conversations), conversations, and their runs."""
    cutoff = utcnow() - deleted_for
    report = PurgeReport()
    async with sessions() as session:
        while True:
            async with write_transaction(session):
                messages, runs = await lifecycle_queries.purge_deleted_messages_batch(
                    session, cutoff, batch_size
                )
            report.messages += messages
            report.agent_runs += runs
            if not messages:
                break
        while True:
            async with write_transaction(session):
                (
                    conversations,
                    messages,
                    runs,
                ) = await lifecycle_queries.purge_deleted_conversations_batch(
                    session, cutoff, batch_size
                )
            report.conversations += conversations
            report.messages += messages
            report.agent_runs += runs
            if not conversations:
                return report


async def erase_user(
    sessions: Sessions, broker: Broker, subject: str, *, batch_size: int = BATCH_SIZE
) -> EraseReport:
    """Everything of the user, the user row last (so an interrupted erase can be run
    again). Subscribers of the user's conversations are told, find them gone, and end.
    A server that still knows the user re-creates an empty row on their next write
    (`db.users.ensure_user`)."""
    report = EraseReport(subject)
    async with sessions() as session:
        async with session.begin():
            user = await user_queries.find_user(session, subject)
        if user is None:
            return report
        report.found = True
        for model in lifecycle_queries.OWNED_TABLES:
            while True:
                async with write_transaction(session):
                    ids = await lifecycle_queries.delete_owned_batch(
                        session, model, user.id, batch_size
                    )
                if not ids:
                    break
                _count_erased(report, model, len(ids))
                if model is Conversation:
                    for conversation_id in ids:
                        await broker.publish(conversation_id)
        async with write_transaction(session):
            await lifecycle_queries.delete_user(session, user.id)
    return report


def _count_erased(report: EraseReport, model: type[Any], count: int) -> None:
    if model is AgentRun:
        report.agent_runs += count
    elif model is Message:
        report.messages += count
    elif model is Conversation:
        report.conversations += count
    elif model is Task:
        report.tasks += count


async def export_user(
    sessions: Sessions, subject: str, *, batch_size: int = BATCH_SIZE
) -> dict[str, Any] | None:
    """All of the user's data as JSON-ready values (soft-deleted rows included, with
    their `deletedAt`: they are stored until purged); `None` for an unknown subject.
    Ids are the API's global ids where the API has them."""
    async with sessions() as session:
        async with session.begin():
            user = await user_queries.find_user(session, subject)
        if user is None:
            return None
        conversations = await _all_owned(session, Conversation, user.id, batch_size)
        messages = await _all_owned(session, Message, user.id, batch_size)
        tasks = await _all_owned(session, Task, user.id, batch_size)
        runs = await _all_owned(session, AgentRun, user.id, batch_size)
        feedback = await _all_owned(session, ReplyFeedback, user.id, batch_size)
    conversations.sort(key=lambda row: (row.created_at, row.id))
    messages.sort(key=lambda row: (str(row.conversation_id), row.seq))
    tasks.sort(key=lambda row: (row.created_at, row.id))
    runs.sort(key=lambda row: (row.created_at, row.id))
    return {
        "user": _user(user),
        "conversations": [_conversation(row) for row in conversations],
        "messages": [_message(row) for row in messages],
        "tasks": [_task(row) for row in tasks],
        "agentRuns": [_run(row) for row in runs],
        "feedback": [
            _feedback(row) for row in sorted(feedback, key=lambda r: (r.created_at, r.id))
        ],
    }


async def _all_owned(
    session: AsyncSession, model: type[lifecycle_queries.Row], user_id: uuid.UUID, batch_size: int
) -> list[lifecycle_queries.Row]:
    """Page by page, each page its own short read."""
    rows: list[lifecycle_queries.Row] = []
    after: uuid.UUID | None = None
    while True:
        async with session.begin():
            page = await lifecycle_queries.owned_page(session, model, user_id, after, batch_size)
        rows.extend(page)
        if len(page) < batch_size:
            return rows
        after = page[-1].id  # type: ignore[attr-defined]


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _gid(type_name: str, row_id: uuid.UUID | None) -> str | None:
    return None if row_id is None else to_global_id(type_name, row_id)


def _user(row: User) -> dict[str, Any]:
    return {
        "id": _gid("User", row.id),
        "subject": row.subject,
        "createdAt": _time(row.created_at),
    }


def _conversation(row: Conversation) -> dict[str, Any]:
    return {
        "id": _gid("Conversation", row.id),
        "title": row.title,
        "status": row.status.value,
        "metadata": row.meta,
        "createdAt": _time(row.created_at),
        "updatedAt": _time(row.updated_at),
        "deletedAt": _time(row.deleted_at),
    }


def _message(row: Message) -> dict[str, Any]:
    return {
        "id": _gid("Message", row.id),
        "conversationId": _gid("Conversation", row.conversation_id),
        "seq": row.seq,
        "role": row.role.value,
        "status": row.status.value,
        "content": row.content,
        "toolCalls": row.tool_calls,
        "parentId": _gid("Message", row.parent_id),
        "clientMessageId": row.client_message_id,
        "metadata": row.meta,
        "createdAt": _time(row.created_at),
        "deletedAt": _time(row.deleted_at),
    }


def _task(row: Task) -> dict[str, Any]:
    return {
        "id": _gid("Task", row.id),
        "title": row.title,
        "description": row.description,
        "status": row.status.value,
        "createdAt": _time(row.created_at),
        "updatedAt": _time(row.updated_at),
        "completedAt": _time(row.completed_at),
    }


def _run(row: AgentRun) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "conversationId": _gid("Conversation", row.conversation_id),
        "userMessageId": _gid("Message", row.user_message_id),
        "status": row.status.value,
        "errorCode": row.error_code,
        "createdAt": _time(row.created_at),
        "finishedAt": _time(row.finished_at),
        "replyId": _gid("Message", row.reply_id),
        "model": row.model,
        "promptTokens": row.prompt_tokens,
        "completionTokens": row.completion_tokens,
        "usageEstimated": row.usage_estimated,
        "latencyMs": row.latency_ms,
    }


def _feedback(row: ReplyFeedback) -> dict[str, Any]:
    return {
        "messageId": _gid("Message", row.message_id),
        "rating": row.rating.value,
        "comment": row.comment,
        "createdAt": _time(row.created_at),
        "updatedAt": _time(row.updated_at),
    }


def export_summary(export: dict[str, Any]) -> str:
    subject = export["user"]["subject"]
    return (
        f"exported user {subject!r}: {len(export['conversations'])} conversations, "
        f"{len(export['messages'])} messages, {len(export['tasks'])} tasks, "
        f"{len(export['agentRuns'])} agent runs"
    )
