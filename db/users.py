"""Users: created the first time a token's subject is seen, race-free."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import User
from db.types import utcnow


async def find_user(session: AsyncSession, subject: str) -> User | None:
    return await session.scalar(select(User).where(User.subject == subject))


async def create_user(session: AsyncSession, subject: str) -> User:
    """Inserts the user unless a concurrent first request already did, then reads it."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(User)
        .values(subject=subject, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=[User.subject])
    )
    user = await find_user(session, subject)
    assert user is not None
    return user


async def lock_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Serialises the transactions of one user that take this lock (PostgreSQL row lock,
    FOR NO KEY UPDATE so that inserts referencing the user are not blocked; SQLite
    transactions that write are serialised anyway)."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))
