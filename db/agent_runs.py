"""Agent runs: one row a turn. The rate limit counts them, so it holds across instances."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AgentRun, RunStatus
from db.types import utcnow


async def runs_since(
    session: AsyncSession, user_id: uuid.UUID, since: datetime
) -> tuple[int, datetime | None]:
    """How many runs the user started since `since`, and when the oldest of them was."""
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(AgentRun.created_at)).where(
                AgentRun.user_id == user_id, AgentRun.created_at > since
            )
        )
    ).one()
    if isinstance(oldest, str):  # SQLite returns min() of a datetime column as text
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=since.tzinfo)
    return int(count), oldest


async def start_run(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    user_message_id: uuid.UUID,
    run_id: uuid.UUID | None = None,
) -> AgentRun:
    run = AgentRun(
        id=run_id or uuid.uuid4(),
        user_id=user_id,
        conversation_id=conversation_id,
        user_message_id=user_message_id,
        status=RunStatus.RUNNING,
        created_at=utcnow(),
    )
    session.add(run)
    await session.flush()
    return run


async def finish_run(
    session: AsyncSession,
    run_id: uuid.UUID,
    status: RunStatus,
    error_code: str | None = None,
    *,
    reply_id: uuid.UUID | None = None,
    latency_ms: int | None = None,
    spent: dict[str, Any] | None = None,
) -> None:
    """Marks the run (one UPDATE); `spent` sets its usage columns (model, prompt_tokens,
    completion_tokens, usage_estimated)."""
    values: dict[str, Any] = {
        "status": status,
        "error_code": error_code,
        "finished_at": utcnow(),
        **(spent or {}),
    }
    if reply_id is not None:
        values["reply_id"] = reply_id
    if latency_ms is not None:
        values["latency_ms"] = latency_ms
    await session.execute(
        update(AgentRun)
        .where(AgentRun.id == run_id)
        .values(values)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True, slots=True)
class UsageTotals:
    turns: int
    prompt_tokens: int
    completion_tokens: int


async def usage_totals(
    session: AsyncSession, user_id: uuid.UUID, since: datetime | None
) -> UsageTotals:
    """The user's runs that spent tokens (since `since`), summed: one statement."""
    conditions = [AgentRun.user_id == user_id, AgentRun.prompt_tokens.is_not(None)]
    if since is not None:
        conditions.append(AgentRun.created_at >= since)
    turns, prompt, completion = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(AgentRun.prompt_tokens), 0),
                func.coalesce(func.sum(AgentRun.completion_tokens), 0),
            ).where(*conditions)
        )
    ).one()
    return UsageTotals(int(turns), int(prompt or 0), int(completion or 0))


async def runs_of_replies(
    session: AsyncSession, user_id: uuid.UUID, reply_ids: Sequence[uuid.UUID]
) -> list[AgentRun]:
    return list(
        await session.scalars(
            select(AgentRun).where(AgentRun.reply_id.in_(reply_ids), AgentRun.user_id == user_id)
        )
    )


WINDOW = timedelta(minutes=1)


async def fail_running_runs_of(
    session: AsyncSession, user_message_id: uuid.UUID, error_code: str
) -> int:
    """Marks FAILED the runs of a question still RUNNING; how many there were."""
    result = await session.execute(
        update(AgentRun)
        .where(AgentRun.user_message_id == user_message_id, AgentRun.status == RunStatus.RUNNING)
        .values(status=RunStatus.FAILED, error_code=error_code, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
