"""Statements kept for asyncpg (db/driver.py) behave as SQLAlchemy's: in the session's
transaction, with its errors, its column types, and out of the way of anyone observing
statements through SQLAlchemy's events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import bindparam, event, exc, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from db import driver
from db.engine import SQLITE_WRITE, create_engine, create_session_factory
from db.models import User
from db.transactions import write_transaction
from tests.pgtools import asyncpg_dsn

_INSERT = driver.Kept(
    insert(User).values(
        id=bindparam("b_id"),
        subject=bindparam("b_subject"),
        created_at=bindparam("b_created_at"),
        last_change_seq=bindparam("b_seq"),
    )
)
_USERS = driver.Loader(User)
_COLUMNS, _user = _USERS.columns, _USERS
_BY_ID = driver.Kept(select(*_COLUMNS).where(User.id == bindparam("b_id")))
_BUMP = driver.Kept(
    update(User)
    .where(User.id == bindparam("b_id"))
    .values(last_change_seq=User.last_change_seq + 1)
    .returning(User.last_change_seq)
)


@pytest.fixture
async def engine(database_urls: dict[str, str], backend: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_urls[backend], pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()


def _values(user_id: uuid.UUID, subject: str | None = None) -> dict[str, object]:
    return {
        "b_id": user_id,
        "b_subject": subject or f"driver-{user_id}",
        "b_created_at": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "b_seq": 7,
    }


async def _on_driver(session: AsyncSession, backend: str) -> None:
    """On direct PostgreSQL the kept statements are asyncpg's to run; SQLAlchemy's
    elsewhere (the test would prove nothing about the driver path otherwise)."""
    assert driver.may_run(await session.connection()) is (backend == "postgres")


async def test_rows_read_back_as_the_orm_loads_them(engine: AsyncEngine, backend: str) -> None:
    factory = create_session_factory(engine)
    user_id = uuid.uuid4()
    async with factory() as session, write_transaction(session):
        await _on_driver(session, backend)
        await driver.execute(session, _INSERT, _values(user_id))
        row = await driver.first(session, _BY_ID, {"b_id": user_id})
        assert row is not None
        kept = _user(row)
        assert await driver.scalar(session, _BUMP, {"b_id": user_id}) == 8
    async with factory() as session:
        loaded = await session.get(User, user_id)
        assert loaded is not None
        assert (kept.id, kept.subject, kept.created_at) == (
            loaded.id,
            loaded.subject,
            loaded.created_at,
        )
        assert loaded.last_change_seq == 8
        assert kept.created_at.tzinfo is not None  # through the column's type, as the ORM


async def test_statements_belong_to_the_session_transaction(
    engine: AsyncEngine, backend: str
) -> None:
    factory = create_session_factory(engine)
    user_id = uuid.uuid4()
    async with factory() as session:
        await session.begin()
        await session.connection(execution_options={SQLITE_WRITE: True})
        await _on_driver(session, backend)
        await driver.execute(session, _INSERT, _values(user_id))
        # the ORM sees the row the driver wrote: one transaction, one connection
        assert await session.get(User, user_id) is not None
        await session.rollback()
    async with factory() as session:
        assert await driver.first(session, _BY_ID, {"b_id": user_id}) is None
        assert await session.get(User, user_id) is None


async def test_a_violated_constraint_raises_sqlalchemys_error(
    engine: AsyncEngine, backend: str
) -> None:
    factory = create_session_factory(engine)
    user_id = uuid.uuid4()
    async with factory() as session:
        async with write_transaction(session):
            await _on_driver(session, backend)
            await driver.execute(session, _INSERT, _values(user_id))
        with pytest.raises(exc.IntegrityError):
            async with write_transaction(session):
                await driver.execute(session, _INSERT, _values(uuid.uuid4(), f"driver-{user_id}"))
        # the session goes on after its rollback, on the driver path still
        async with write_transaction(session):
            await driver.execute(session, _BUMP, {"b_id": user_id})
    async with factory() as session:
        loaded = await session.get(User, user_id)
        assert loaded is not None
        assert loaded.last_change_seq == 8


async def test_many_values_in_one_statement(engine: AsyncEngine) -> None:
    factory = create_session_factory(engine)
    ids = [uuid.uuid4() for _ in range(3)]
    async with factory() as session, write_transaction(session):
        await driver.execute_many(session, _INSERT, [_values(i) for i in ids])
    async with factory() as session:
        found = [await driver.first(session, _BY_ID, {"b_id": i}) for i in ids]
        assert all(row is not None for row in found)


async def test_observed_statements_go_through_sqlalchemy(engine: AsyncEngine, backend: str) -> None:
    seen: list[str] = []

    def observe(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", observe)
    factory = create_session_factory(engine)
    user_id = uuid.uuid4()
    async with factory() as session, write_transaction(session):
        assert not driver.may_run(await session.connection())
        await driver.execute(session, _INSERT, _values(user_id))
        assert await driver.first(session, _BY_ID, {"b_id": user_id}) is not None
    assert sum("INSERT INTO users" in sql for sql in seen) == 1
    event.remove(engine.sync_engine, "before_cursor_execute", observe)
    async with factory() as session:
        await _on_driver(session, backend)


async def test_behind_a_transaction_pooler_sqlalchemy_runs_them(
    database_urls: dict[str, str],
) -> None:
    engine = create_engine(database_urls["postgres"], pool_size=1, pooled=True)
    try:
        factory = create_session_factory(engine)
        async with factory() as session:
            assert not driver.may_run(await session.connection())
            user_id = uuid.uuid4()
            await driver.execute(session, _INSERT, _values(user_id))
            assert await driver.first(session, _BY_ID, {"b_id": user_id}) is not None
            await session.rollback()
    finally:
        await engine.dispose()


async def test_a_row_changed_through_the_driver_leaves_no_stale_copy(
    engine: AsyncEngine, backend: str
) -> None:
    factory = create_session_factory(engine)
    user_id = uuid.uuid4()
    async with factory() as session, write_transaction(session):
        await driver.execute(session, _INSERT, _values(user_id))
    async with factory() as session, write_transaction(session):
        held = await session.get(User, user_id)
        assert held is not None
        assert held.last_change_seq == 7
        await _on_driver(session, backend)
        changed = _USERS.refreshed(session, await _bump_all(session, user_id))
        # the instance the session holds is the one returned, up to date
        assert changed is held
        assert held.last_change_seq == 8
        assert await session.get(User, user_id) is held
    # a row the session does not hold comes back as a new instance no session holds
    async with factory() as session, write_transaction(session):
        fresh = _USERS.refreshed(session, await _bump_all(session, user_id))
        assert fresh.last_change_seq == 9
        assert fresh not in session


_BUMP_ALL = driver.Kept(
    update(User)
    .where(User.id == bindparam("b_id"))
    .values(last_change_seq=User.last_change_seq + 1)
    .returning(*_USERS.columns)
)


async def _bump_all(session: AsyncSession, user_id: uuid.UUID) -> Sequence[Any]:
    row = await driver.first(session, _BUMP_ALL, {"b_id": user_id})
    assert row is not None
    return row


# --- a read alone, outside any session (compiled pages) -----------------------------------

_BACKEND_PID = driver.Kept(text("SELECT pg_backend_pid()"))
_DIVIDE = driver.Kept(text("SELECT 1 / :n"))


async def test_a_lone_read_gives_what_a_session_reads(engine: AsyncEngine) -> None:
    factory = create_session_factory(engine)
    user_id = uuid.uuid4()
    async with factory() as session, write_transaction(session):
        await driver.execute(session, _INSERT, _values(user_id))
    async with factory() as session:
        in_session = await driver.rows(session, _BY_ID, {"b_id": user_id})
    alone = await driver.lone_rows(engine, _BY_ID, {"b_id": user_id})
    assert [tuple(row) for row in alone] == [tuple(row) for row in in_session]
    assert _user(alone[0]).created_at == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    # its connection went back to the pool, in no transaction
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await driver.lone_rows(engine, _BY_ID, {"b_id": uuid.uuid4()}) == []


@pytest.fixture
async def one_connection(database_urls: dict[str, str]) -> AsyncIterator[AsyncEngine]:
    """A PostgreSQL engine that pools one connection, not pinged before use."""
    engine = create_engine(database_urls["postgres"], pool_size=1, pre_ping=False)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_a_lone_read_on_a_dropped_connection_runs_again(
    one_connection: AsyncEngine, database_urls: dict[str, str]
) -> None:
    [(pid,)] = await driver.lone_rows(one_connection, _BACKEND_PID, {})
    admin = await asyncpg.connect(asyncpg_dsn(database_urls["postgres"]))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    [(again,)] = await driver.lone_rows(one_connection, _BACKEND_PID, {})
    assert again != pid  # on a fresh connection, the dropped one replaced


async def test_a_lone_reads_error_is_sqlalchemys_and_the_connection_stays_usable(
    one_connection: AsyncEngine,
) -> None:
    [(pid,)] = await driver.lone_rows(one_connection, _BACKEND_PID, {})
    with pytest.raises(exc.DBAPIError) as raised:
        await driver.lone_rows(one_connection, _DIVIDE, {"n": 0})
    assert "division by zero" in str(raised.value)
    assert not raised.value.connection_invalidated
    assert await driver.lone_rows(one_connection, _BACKEND_PID, {}) == [(pid,)]


async def test_observed_lone_reads_go_through_sqlalchemy(engine: AsyncEngine) -> None:
    seen: list[str] = []

    def observe(*args: object) -> None:
        seen.append(str(args[2]))

    user_id = uuid.uuid4()
    event.listen(engine.sync_engine, "before_cursor_execute", observe)
    try:
        assert await driver.lone_rows(engine, _BY_ID, {"b_id": user_id}) == []
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", observe)
    assert sum("FROM users" in sql for sql in seen) == 1


async def test_statements_find_the_connection_their_transaction_holds(
    engine: AsyncEngine, backend: str
) -> None:
    """`held_connection`: none before the transaction has one, the session's own after
    (a used savepoint's too), none once it ended; a statement run through it is in the
    transaction (rolled back with it)."""
    factory = create_session_factory(engine)
    user_id = uuid.uuid4()
    async with factory() as session:
        assert driver.held_connection(session) is None
        async with write_transaction(session):
            own = (await session.connection()).sync_connection
            assert driver.held_connection(session) is own
            async with session.begin_nested():
                # a savepoint holds its connection once it is used (its first statement)
                await driver.execute(session, _INSERT, _values(user_id))
                assert driver.held_connection(session) is own
            assert await driver.scalar(session, _BUMP, {"b_id": user_id}) == 8
            await session.rollback()
        assert driver.held_connection(session) is None
        async with write_transaction(session):
            assert await driver.first(session, _BY_ID, {"b_id": user_id}) is None
