"""Task use cases, shared by the GraphQL mutations and the agent's tools."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from db import tasks as task_queries
from db.models import Task, TaskStatus
from db.types import utcnow
from services.validation import DESCRIPTION_MAX, TASK_TITLE_MAX, clean_optional_text, clean_text


async def require_task(session: AsyncSession, user_id: uuid.UUID, task_id: uuid.UUID) -> Task:
    task = await task_queries.get_task(session, user_id, task_id)
    if task is None:
        raise NotFound("task")
    return task


async def create_task(
    session: AsyncSession, user_id: uuid.UUID, title: str, description: str | None = None
) -> Task:
    now = utcnow()
    task = Task(
        id=uuid.uuid4(),
        user_id=user_id,
        title=clean_text(title, "title", TASK_TITLE_MAX),
        description=clean_optional_text(description, "description", DESCRIPTION_MAX),
        status=TaskStatus.PENDING,
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    await session.flush()
    return task


async def update_task(
    session: AsyncSession,
    user_id: uuid.UUID,
    task_id: uuid.UUID,
    *,
    title: str | None = None,
    description: str | None = None,
) -> Task:
    """`None` leaves a field as it is; an empty description clears it."""
    new_title = None if title is None else clean_text(title, "title", TASK_TITLE_MAX)
    new_description = (
        None
        if description is None
        else clean_optional_text(description, "description", DESCRIPTION_MAX)
    )
    task = await require_task(session, user_id, task_id)
    if new_title is not None:
        task.title = new_title
    if description is not None:
        task.description = new_description
    task.updated_at = utcnow()
    await session.flush()
    return task


async def set_task_status(
    session: AsyncSession, user_id: uuid.UUID, task_id: uuid.UUID, status: TaskStatus
) -> Task:
    task = await require_task(session, user_id, task_id)
    if task.status != status:
        now = utcnow()
        task.status = status
        task.completed_at = now if status == TaskStatus.COMPLETED else None
        task.updated_at = now
        await session.flush()
    return task


async def delete_task(session: AsyncSession, user_id: uuid.UUID, task_id: uuid.UUID) -> Task:
    task = await require_task(session, user_id, task_id)
    await task_queries.delete_task(session, task)
    return task
