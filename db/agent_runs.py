"""Agent runs: one row a turn. The rate limit counts them, so it holds across instances."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Update, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import driver
from db.models import AgentRun, RunStatus, status_is
from db.types import utcnow

_RUNS = driver.Loader(AgentRun)

_RUNS_SINCE = driver.Kept(
    select(func.count(), func.min(AgentRun.created_at)).where(
        AgentRun.user_id == bindparam("b_user_id"), AgentRun.created_at > bindparam("b_since")
    )
)


async def runs_since(
    session: AsyncSession, user_id: uuid.UUID, since: datetime
) -> tuple[int, datetime | None]:
    """How many runs the user started since `since`, and when the oldest of them was."""
    row = await driver.first(session, _RUNS_SINCE, {"b_user_id": user_id, "b_since": since})
    assert row is not None  # an aggregate always has its row
    count, oldest = row
    if isinstance(oldest, str):  # SQLite returns min() of a datetime column as text
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=since.tzinfo)
    return int(count), oldest


def start_run_under_limit_statement() -> Any:
    """The run's INSERT, made only if the user started fewer than `b_limit` runs since
    `b_since` (the count and the insert in one statement, in that order: the same
    snapshot, taken after the user's row was locked)."""
    recent = (
        select(func.count())
        .where(
            AgentRun.user_id == driver.bound(AgentRun.user_id),
            AgentRun.created_at > bindparam("b_since", type_=AgentRun.created_at.type),
        )
        .scalar_subquery()
    )
    row = select(*(driver.bound(column) for column in _RUNS.columns)).where(
        recent < bindparam("b_limit", type_=Integer)
    )
    return (
        insert(AgentRun)
        .from_select([column.key for column in _RUNS.columns], row)
        .returning(AgentRun.id)
    )


_START_RUN_UNDER_LIMIT = driver.Kept(start_run_under_limit_statement())


async def start_run_under_limit(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    user_message_id: uuid.UUID,
    since: datetime,
    limit: int,
    run_id: uuid.UUID | None = None,
) -> AgentRun | None:
    """The run, RUNNING from now (a row no session holds), unless the user started
    `limit` runs or more since `since`: then `None`, and nothing is written."""
    run = new_run(user_id, conversation_id, user_message_id, run_id)
    inserted = await driver.rows(
        session, _START_RUN_UNDER_LIMIT, under_limit_values(run, since, limit)
    )
    return run if inserted else None


def new_run(
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    user_message_id: uuid.UUID,
    run_id: uuid.UUID | None = None,
) -> AgentRun:
    """A run RUNNING from now, as `start_run_under_limit_statement` inserts it."""
    return AgentRun(
        id=run_id or uuid.uuid4(),
        user_id=user_id,
        conversation_id=conversation_id,
        user_message_id=user_message_id,
        status=RunStatus.RUNNING,
        error_code=None,
        created_at=utcnow(),
        finished_at=None,
        reply_id=None,
        model=None,
        prompt_tokens=None,
        completion_tokens=None,
        usage_estimated=False,
        latency_ms=None,
    )


def under_limit_values(run: AgentRun, since: datetime, limit: int) -> dict[str, Any]:
    """What `start_run_under_limit_statement` binds."""
    return {**_RUNS.values_of(run), "b_since": since, "b_limit": limit}


def _unless_given(column: Any, prefix: str) -> Any:
    """The column's new value: its bind's, or the value it has when the bind is NULL."""
    return func.coalesce(driver.bound(column, prefix), column)


def finish_run_statement(prefix: str = "b_") -> Update:
    """A run's end (what `finish_run` sends): binds named `<prefix><column>`, the run's
    id `<prefix>id`; `run_end_values` gives them."""
    return (
        update(AgentRun)
        .where(AgentRun.id == bindparam(f"{prefix}id"))
        .values(
            status=driver.bound(AgentRun.status, prefix),
            error_code=driver.bound(AgentRun.error_code, prefix),
            finished_at=driver.bound(AgentRun.finished_at, prefix),
            reply_id=_unless_given(AgentRun.reply_id, prefix),
            latency_ms=_unless_given(AgentRun.latency_ms, prefix),
            model=_unless_given(AgentRun.model, prefix),
            prompt_tokens=_unless_given(AgentRun.prompt_tokens, prefix),
            completion_tokens=_unless_given(AgentRun.completion_tokens, prefix),
            usage_estimated=_unless_given(AgentRun.usage_estimated, prefix),
        )
    )


_FINISH_RUN = driver.Kept(finish_run_statement())

#: what `spent` may set
_SPENT = ("model", "prompt_tokens", "completion_tokens", "usage_estimated")


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How a run ends: its status and error code, the reply it gave, its latency and
    what it spent (model, prompt_tokens, completion_tokens, usage_estimated). A column
    given no value (None) keeps the one it has."""

    run_id: uuid.UUID
    status: RunStatus
    error_code: str | None = None
    reply_id: uuid.UUID | None = None
    latency_ms: int | None = None
    spent: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.spent) - set(_SPENT)
        if unknown:
            raise ValueError(f"not usage columns: {sorted(unknown)}")


def run_end_values(end: RunEnd, prefix: str = "b_") -> dict[str, Any]:
    """The binds of `finish_run_statement(prefix)` for `end`."""
    values: dict[str, Any] = {
        f"{prefix}id": end.run_id,
        f"{prefix}status": end.status,
        f"{prefix}error_code": end.error_code,
        f"{prefix}finished_at": utcnow(),
        f"{prefix}reply_id": end.reply_id,
        f"{prefix}latency_ms": end.latency_ms,
    }
    for key in _SPENT:
        values[f"{prefix}{key}"] = end.spent.get(key)
    return values


async def finish_run(session: AsyncSession, end: RunEnd) -> None:
    """Marks the run: one UPDATE, the same statement every time."""
    await driver.execute(session, _FINISH_RUN, run_end_values(end))


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
        .where(
            AgentRun.user_message_id == user_message_id,
            # the constant in the SQL: the index of running runs applies to any plan
            status_is(AgentRun.status, RunStatus.RUNNING),
        )
        .values(status=RunStatus.FAILED, error_code=error_code, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
