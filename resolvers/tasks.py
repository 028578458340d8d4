"""Task reads and mutations."""

from __future__ import annotations

import uuid

from core.ids import expect_global_id
from db import tasks as task_queries
from db.models import Task, TaskStatus
from resolvers.context import Context
from resolvers.pagination import PageResult, page_result, window_from_args
from services import tasks as task_service


async def list_tasks(
    ctx: Context,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    status: TaskStatus | None,
) -> PageResult[Task]:
    user_id = await ctx.user_id()
    spec, scope = task_queries.TASKS, str(user_id)
    window = window_from_args(ctx.app.cursors, spec, scope, first, after, last, before)
    async with ctx.reading() as session:
        page = await task_queries.list_tasks(session, user_id, status, window)

    async def count() -> int:
        async with ctx.reading() as session:
            return await task_queries.count_tasks(session, user_id, status)

    return page_result(ctx.app.cursors, spec, scope, page, count)


async def task(ctx: Context, task_id: str) -> Task | None:
    return await ctx.loaders.task_by_id.load(expect_global_id(task_id, "Task"))


async def create_task(ctx: Context, title: str, description: str | None) -> Task:
    user_id = await ctx.user_id()
    async with ctx.writing() as session:
        return await task_service.create_task(session, user_id, title, description)


async def update_task(
    ctx: Context, task_id: str, title: str | None, description: str | None
) -> Task:
    row_id = expect_global_id(task_id, "Task")
    user_id = await ctx.user_id()
    async with ctx.writing() as session:
        return await task_service.update_task(
            session, user_id, row_id, title=title, description=description
        )


async def set_task_status(ctx: Context, task_id: str, status: TaskStatus) -> Task:
    row_id = expect_global_id(task_id, "Task")
    user_id = await ctx.user_id()
    async with ctx.writing() as session:
        return await task_service.set_task_status(session, user_id, row_id, status)


async def delete_task(ctx: Context, task_id: str) -> uuid.UUID:
    row_id = expect_global_id(task_id, "Task")
    user_id = await ctx.user_id()
    async with ctx.writing() as session:
        await task_service.delete_task(session, user_id, row_id)
    return row_id
