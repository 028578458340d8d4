"""Queries on tasks; every one is scoped to its owner."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Select, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from core.errors import NotFound
from db import driver
from db.models import Task, TaskStatus
from db.pagination import ListSpec, Page, Window, fetch_page
from db.types import utcnow

#: newest first
TASKS = ListSpec.of("tasks", Task.created_at, Task.id, descending=True)


def listed_filters(with_status: bool) -> list[ColumnElement[bool]]:
    """The user's tasks, bind parameters `user_id` (and `status`)."""
    filters = [Task.user_id == bindparam("user_id")]
    if with_status:
        filters.append(Task.status == bindparam("status"))
    return filters


def _listed_rows(with_status: bool) -> Select[Task]:
    """The list's select (`listed_filters`): built once per form."""
    return select(Task).where(*listed_filters(with_status))


def list_params(user_id: uuid.UUID, status: TaskStatus | None) -> dict[str, object]:
    return {"user_id": user_id} if status is None else {"user_id": user_id, "status": status}


_COUNTS = {
    with_status: select(func.count()).select_from(
        _listed_rows(with_status).with_only_columns(Task.id).subquery()
    )
    for with_status in (False, True)
}


async def list_tasks(
    session: AsyncSession, user_id: uuid.UUID, status: TaskStatus | None, window: Window
) -> Page[Task]:
    with_status = status is not None
    return await fetch_page(
        session,
        ("tasks", with_status),
        lambda: _listed_rows(with_status),
        list_params(user_id, status),
        TASKS,
        window,
    )


async def count_tasks(session: AsyncSession, user_id: uuid.UUID, status: TaskStatus | None) -> int:
    count = await session.scalar(_COUNTS[status is not None], list_params(user_id, status))
    return int(count or 0)


_TASKS = driver.Loader(Task)
_ALL_TASKS = {
    with_status: driver.Kept(
        select(*_TASKS.columns)
        .where(*listed_filters(with_status))
        .order_by(Task.created_at, Task.id)
        .limit(bindparam("limit"))
    )
    for with_status in (False, True)
}


async def all_tasks(
    session: AsyncSession, user_id: uuid.UUID, status: TaskStatus | None, limit: int
) -> list[Task]:
    """Oldest first, as the assistant reads a list out (rows no session holds)."""
    rows = await driver.rows(
        session, _ALL_TASKS[status is not None], {**list_params(user_id, status), "limit": limit}
    )
    return [_TASKS(row) for row in rows]


async def get_task(session: AsyncSession, user_id: uuid.UUID, task_id: uuid.UUID) -> Task | None:
    return await session.scalar(select(Task).where(Task.id == task_id, Task.user_id == user_id))


_BY_IDS = select(Task).where(
    Task.id.in_(bindparam("ids", expanding=True)), Task.user_id == bindparam("user_id")
)


async def get_tasks(
    session: AsyncSession, user_id: uuid.UUID, task_ids: Sequence[uuid.UUID]
) -> list[Task]:
    return list(await session.scalars(_BY_IDS, {"ids": list(task_ids), "user_id": user_id}))


async def find_tasks_by_title(session: AsyncSession, user_id: uuid.UUID, title: str) -> list[Task]:
    """Case-insensitive exact title match."""
    stmt = (
        select(Task)
        .where(Task.user_id == user_id, func.lower(Task.title) == title.lower())
        .order_by(Task.created_at, Task.id)
    )
    return list(await session.scalars(stmt))


async def add_task(
    session: AsyncSession, user_id: uuid.UUID, title: str, description: str | None
) -> Task:
    now = utcnow()
    task = Task(
        id=uuid.uuid4(),
        user_id=user_id,
        title=title,
        description=description,
        status=TaskStatus.PENDING,
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    await session.flush()
    return task


async def change_task(
    session: AsyncSession,
    task: Task,
    *,
    title: str | None,
    description: str | None,
    sets_description: bool,
) -> None:
    """`title=None` keeps the title; the description changes only when `sets_description`."""
    if title is not None:
        task.title = title
    if sets_description:
        task.description = description
    task.updated_at = utcnow()
    await _flush_unless_gone(session)


async def change_task_status(session: AsyncSession, task: Task, status: TaskStatus) -> None:
    now = utcnow()
    task.status = status
    task.completed_at = now if status == TaskStatus.COMPLETED else None
    task.updated_at = now
    await _flush_unless_gone(session)


async def _flush_unless_gone(session: AsyncSession) -> None:
    """A task deleted by a concurrent request between our read and our write matches no
    row: for the caller it is as missing as one that never existed."""
    try:
        await session.flush()
    except StaleDataError:
        raise NotFound("task") from None


async def delete_task(session: AsyncSession, task: Task) -> None:
    await session.execute(delete(Task).where(Task.id == task.id))
