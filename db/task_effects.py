"""Queries on task effects: which reply's tool call created or changed which task."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from db.models import EffectKind, Message, Task, TaskEffect
from db.types import utcnow


@dataclass(frozen=True, slots=True)
class NewEffect:
    tool_call_id: str
    position: int
    task_id: uuid.UUID
    kind: EffectKind


async def add_effects(
    session: AsyncSession, user_id: uuid.UUID, message_id: uuid.UUID, effects: Sequence[NewEffect]
) -> None:
    """Records the effects of one reply, on the user's tasks that still exist (a task the
    same reply created and then deleted keeps none)."""
    if not effects:
        return
    existing = set(
        await session.scalars(
            select(Task.id).where(
                Task.id.in_({effect.task_id for effect in effects}), Task.user_id == user_id
            )
        )
    )
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "user_id": user_id,
            "task_id": effect.task_id,
            "message_id": message_id,
            "tool_call_id": effect.tool_call_id,
            "position": effect.position,
            "kind": effect.kind,
            "created_at": now,
        }
        for effect in effects
        if effect.task_id in existing
    ]
    if rows:
        await session.execute(insert(TaskEffect), rows)


async def origins(
    session: AsyncSession, user_id: uuid.UUID, task_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[Message, str]]:
    """For each task, the live reply whose tool call created it and that call's id; the
    newest such reply when a regenerated one reports the same creation. One statement."""
    rows = await session.execute(
        select(TaskEffect.task_id, TaskEffect.tool_call_id, Message)
        .join(Message, Message.id == TaskEffect.message_id)
        .options(defer(Message.meta, raiseload=True))
        .where(
            TaskEffect.task_id.in_(task_ids),
            TaskEffect.user_id == user_id,
            TaskEffect.kind == EffectKind.CREATED,
            Message.user_id == user_id,
            Message.deleted_at.is_(None),
        )
        .order_by(Message.created_at, Message.seq)
    )
    found: dict[uuid.UUID, tuple[Message, str]] = {}
    for task_id, tool_call_id, message in rows.all():
        found[task_id] = (message, tool_call_id)  # later rows are newer replies
    return found


async def affected_tasks(
    session: AsyncSession, user_id: uuid.UUID, message_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Task]]:
    """For each reply, the tasks its tool calls created or changed, in call order, each
    once; deleted tasks are gone (their effects went with them). One statement."""
    rows = await session.execute(
        select(TaskEffect.message_id, Task)
        .join(Task, Task.id == TaskEffect.task_id)
        .where(
            TaskEffect.message_id.in_(message_ids),
            TaskEffect.user_id == user_id,
            Task.user_id == user_id,
        )
        .order_by(TaskEffect.message_id, TaskEffect.position)
    )
    found: dict[uuid.UUID, list[Task]] = {}
    for message_id, task in rows.all():
        tasks = found.setdefault(message_id, [])
        if all(known.id != task.id for known in tasks):
            tasks.append(task)
    return found
