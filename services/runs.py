"""Agent runs: the record of each turn, and the rate limit that counts them."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import RateLimited
from db import agent_runs as run_queries
from db import turn_start
from db import users as user_queries
from db.messages import HistoryLine
from db.models import Message, RunStatus
from db.types import utcnow


async def start_run(
    session: AsyncSession,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    question_id: uuid.UUID,
    *,
    limit_per_minute: int,
) -> uuid.UUID:
    """Records a turn about to run, unless the user is over the rate limit
    (`RATE_LIMITED`). Concurrent turns of one user count one after another, on every
    instance: the user's row is locked first (the count, a later statement, then sees
    every run committed before the lock was granted)."""
    await user_queries.lock_user(session, user_id)
    now = utcnow()
    since = now - run_queries.WINDOW
    run = await run_queries.start_run_under_limit(
        session,
        user_id=user_id,
        conversation_id=conversation_id,
        user_message_id=question_id,
        since=since,
        limit=limit_per_minute,
    )
    if run is not None:
        return run.id
    raise await _refused(session, user_id, since, now)


async def start_run_reading_history(
    session: AsyncSession,
    user_id: uuid.UUID,
    question: Message,
    *,
    limit_per_minute: int,
    history_limit: int,
    run_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, list[HistoryLine]]:
    """`start_run` for a question this transaction stored, after a statement that locked
    the user's row (`messages.add_exchange`), and the history the model reads (the
    newest `history_limit` live messages up to the question): on PostgreSQL in one
    statement (db/turn_start.py)."""
    now = utcnow()
    since = now - run_queries.WINDOW
    started = await turn_start.start_run_with_history(
        session,
        user_id=user_id,
        conversation_id=question.conversation_id,
        question_id=question.id,
        up_to_seq=question.seq,
        since=since,
        limit=limit_per_minute,
        history_limit=history_limit,
        run_id=run_id,
    )
    if started is None:
        raise await _refused(session, user_id, since, now)
    return started


async def _refused(
    session: AsyncSession, user_id: uuid.UUID, since: datetime, now: datetime
) -> RateLimited:
    """`RATE_LIMITED`, with when the window lets the next run in."""
    _, oldest = await run_queries.runs_since(session, user_id, since)
    retry_after = 1
    if oldest is not None:
        retry_after = max(1, math.ceil((oldest + run_queries.WINDOW - now).total_seconds()))
    return RateLimited(retry_after)


@dataclass(frozen=True, slots=True)
class RunUsage:
    """What a run spent. `spent` is false for a run that never got a model step (its
    counts stay unknown: it is no turn in the user's totals)."""

    model: str | None
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    latency_ms: int
    spent: bool = True


def run_end(
    run_id: uuid.UUID,
    status: RunStatus,
    error_code: str | None = None,
    *,
    usage: RunUsage | None = None,
    reply_id: uuid.UUID | None = None,
) -> run_queries.RunEnd:
    """How the run ends, as its record keeps it (see `finish_run`)."""
    spent: dict[str, Any] = {}
    if usage is not None and usage.spent:
        spent = {
            "model": usage.model,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "usage_estimated": usage.estimated,
        }
    return run_queries.RunEnd(
        run_id,
        status,
        error_code,
        reply_id=reply_id,
        latency_ms=usage.latency_ms if usage is not None else None,
        spent=spent,
    )


async def finish_run(
    session: AsyncSession,
    run_id: uuid.UUID,
    status: RunStatus,
    error_code: str | None = None,
    *,
    usage: RunUsage | None = None,
    reply_id: uuid.UUID | None = None,
) -> None:
    await run_queries.finish_run(
        session, run_end(run_id, status, error_code, usage=usage, reply_id=reply_id)
    )


async def usage_totals(
    session: AsyncSession, user_id: uuid.UUID, since: datetime | None
) -> run_queries.UsageTotals:
    return await run_queries.usage_totals(session, user_id, since)


#: error code of a run whose process died mid-turn (kill -9, crash, power loss)
INTERRUPTED = "INTERRUPTED"


async def close_interrupted_runs(session: AsyncSession, question_id: uuid.UUID) -> int:
    """Called with the question's turn lock held and no reply stored: a run of it still
    RUNNING belongs to a process that died mid-turn (its unit of work never committed),
    so it is marked FAILED before the turn runs again."""
    return await run_queries.fail_running_runs_of(session, question_id, INTERRUPTED)
