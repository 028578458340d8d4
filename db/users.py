"""Users: created the first time a token's subject is seen, race-free."""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db import driver
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


_USER_EXISTS = driver.Kept(select(User.id).where(User.id == bindparam("b_id")))


async def user_exists(session: AsyncSession, user_id: uuid.UUID) -> bool:
    return await driver.first(session, _USER_EXISTS, {"b_id": user_id}) is not None


async def ensure_user(session: AsyncSession, user: User) -> bool:
    """Inside a write transaction: the row of a user known from earlier exists, and stays
    until the transaction ends (PostgreSQL `FOR KEY SHARE`; an erase waits for us). An
    erased user's row comes back empty, under the same id, so that ids held by running
    servers stay valid. False if the subject meanwhile got a row of another id."""
    found = await session.scalar(
        select(User.id).where(User.id == user.id).with_for_update(read=True, key_share=True)
    )
    if found is not None:
        return True
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    created = await session.scalar(
        insert(User)
        .values(id=user.id, subject=user.subject, created_at=utcnow())
        .on_conflict_do_nothing()
        .returning(User.id)
    )
    if created is not None:
        return True
    # a concurrent write re-created it first, or the subject got a row of its own
    return await session.scalar(select(User.id).where(User.id == user.id)) is not None
