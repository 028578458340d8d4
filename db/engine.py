"""The async engine and session factory, with the SQLite settings that make it safe to
share between concurrent requests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from core.database_url import DatabaseUrl, as_database_url

#: execution option asking SQLite for `BEGIN IMMEDIATE` (take the write lock up front)
SQLITE_WRITE = "taskchat_sqlite_write"


def create_engine(
    database_url: str | DatabaseUrl,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
    pre_ping: bool = True,
    sqlite_busy_seconds: float = 30,
    pooled: bool = False,
) -> AsyncEngine:
    """`database_url` as pasted or normalised (core/database_url.py); `pooled`: it goes
    through a transaction pooler, so no prepared statement is reused."""
    database = as_database_url(database_url)
    if database.is_sqlite:
        return _create_sqlite_engine(database.render(), sqlite_busy_seconds)
    return create_async_engine(
        database.url,
        connect_args=database.sqlalchemy_connect_args(pooled=pooled),
        pool_size=pool_size,
        max_overflow=pool_size * 2 if max_overflow is None else max_overflow,
        # serverless PostgreSQL (Neon) drops idle connections: check each one before use
        # (costs a round trip per checkout) and replace them well before its idle timeout
        pool_pre_ping=pre_ping,
        pool_recycle=240,
    )


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


def _create_sqlite_engine(database_url: str, busy_seconds: float) -> AsyncEngine:
    """SQLite has one writer at a time: a writer waits up to `busy_seconds` for the lock
    (a turn holds it while the model answers, see agent/turn.py)."""
    engine = create_async_engine(
        database_url,
        connect_args={"timeout": busy_seconds},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # we issue BEGIN ourselves (below), so the driver must not
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
        cursor.close()
        # SQLite's lower() (and so case-insensitive search and title matching) knows only
        # ASCII; Python's knows every script, as PostgreSQL's does
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that reads, then writes, fails at once with
        # SQLITE_BUSY when another writer got in between: writers take the lock up front.
        # Reads begin nothing: each statement reads its own fresh snapshot, which saves
        # two round trips to the driver's thread per request.
        if connection.get_execution_options().get(SQLITE_WRITE, False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
