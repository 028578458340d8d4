"""Provenance: the record of which reply's tool call created or changed which task."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from db import task_effects as effect_queries

#: one change a tool call made: (tool call id, position in the reply, task id, kind)
TaskChange = effect_queries.NewEffect


async def record_effects(
    session: AsyncSession, user_id: uuid.UUID, reply_id: uuid.UUID, changes: Sequence[TaskChange]
) -> None:
    """Stored in the reply's unit of work; a task gone by then keeps no record."""
    await effect_queries.add_effects(session, user_id, reply_id, changes)
