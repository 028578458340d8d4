"""Users: created the first time a token's subject is seen, race-free."""

from __future__ import annotations

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
