"""Agent runs: one row a turn. The rate limit counts them, so it holds across instances."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

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
) -> AgentRun:
    run = AgentRun(
        id=uuid.uuid4(),
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
    session: AsyncSession, run_id: uuid.UUID, status: RunStatus, error_code: str | None = None
) -> None:
    run = await session.get(AgentRun, run_id)
    if run is not None:
        run.status = status
        run.error_code = error_code
        run.finished_at = utcnow()
        await session.flush()


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
