"""Task use cases, shared by the GraphQL mutations and the agent's tools."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from db import tasks as task_queries
from db.models import Task, TaskStatus
from services.validation import DESCRIPTION_MAX, TASK_TITLE_MAX, clean_optional_text, clean_text


async def get_task(session: AsyncSession, user_id: uuid.UUID, task_id: uuid.UUID) -> Task | None:
    return await task_queries.get_task(session, user_id, task_id)


async def require_task(session: AsyncSession, user_id: uuid.UUID, task_id: uuid.UUID) -> Task:
    task = await task_queries.get_task(session, user_id, task_id)
    if task is None:
        raise NotFound("task")
    return task


async def tasks_titled(session: AsyncSession, user_id: uuid.UUID, title: str) -> list[Task]:
    """The user's tasks with this title, compared case-insensitively, oldest first."""
    return await task_queries.find_tasks_by_title(
        session, user_id, clean_text(title, "title", TASK_TITLE_MAX)
    )


async def oldest_tasks(
    session: AsyncSession, user_id: uuid.UUID, status: TaskStatus | None, limit: int
) -> list[Task]:
    """Oldest first, as the assistant reads a list out."""
    return await task_queries.all_tasks(session, user_id, status, limit)


async def create_task(
    session: AsyncSession, user_id: uuid.UUID, title: str, description: str | None = None
) -> Task:
    return await task_queries.add_task(
        session,
        user_id,
        clean_text(title, "title", TASK_TITLE_MAX),
        clean_optional_text(description, "description", DESCRIPTION_MAX),
    )


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
    await task_queries.change_task(
        session,
        task,
        title=new_title,
        description=new_description,
        sets_description=description is not None,
    )
    return task


async def set_task_status(
    session: AsyncSession, user_id: uuid.UUID, task_id: uuid.UUID, status: TaskStatus
) -> Task:
    task = await require_task(session, user_id, task_id)
    if task.status != status:
        await task_queries.change_task_status(session, task, status)
    return task


async def delete_task(session: AsyncSession, user_id: uuid.UUID, task_id: uuid.UUID) -> Task:
    task = await require_task(session, user_id, task_id)
    await task_queries.delete_task(session, task)
    return task
