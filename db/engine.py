"""The async engine and session factory, with the SQLite settings that make it safe to
share between concurrent requests."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection

from core.database_url import DatabaseUrl, as_database_url
from core.metrics import DB_POOL_CHECKOUT_SECONDS

#: execution option asking SQLite for `BEGIN IMMEDIATE` (take the write lock up front)
SQLITE_WRITE = "taskchat_sqlite_write"


class TimedQueuePool(AsyncAdaptedQueuePool):
    """The async queue pool, timing each checkout (`taskchat_db_pool_checkout_seconds`):
    a pool too small for the load shows as time spent here."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._checkout_seconds = DB_POOL_CHECKOUT_SECONDS.labels("app")

    def measure_as(self, name: str) -> None:
        self._checkout_seconds = DB_POOL_CHECKOUT_SECONDS.labels(name)

    def connect(self) -> PoolProxiedConnection:
        started = time.perf_counter()
        try:
            return super().connect()
        finally:
            self._checkout_seconds.observe(time.perf_counter() - started)

    def recreate(self) -> TimedQueuePool:
        # keeps the label when SQLAlchemy rebuilds the pool (after a disconnect)
        pool = super().recreate()
        assert isinstance(pool, TimedQueuePool)
        pool._checkout_seconds = self._checkout_seconds
        return pool


def create_engine(
    database_url: str | DatabaseUrl,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
    pre_ping: bool = True,
    sqlite_busy_seconds: float = 30,
    pooled: bool = False,
    metric_pool: str = "app",
) -> AsyncEngine:
    """`database_url` as pasted or normalised (core/database_url.py); `pooled`: it goes
    through a transaction pooler, so no prepared statement is reused; `metric_pool`
    labels the pool's checkout times (a few fixed names)."""
    database = as_database_url(database_url)
    if database.is_sqlite:
        engine = _create_sqlite_engine(database.render(), sqlite_busy_seconds)
    else:
        engine = _create_postgres_engine(database, pool_size, max_overflow, pre_ping, pooled)
    if isinstance(engine.pool, TimedQueuePool):
        engine.pool.measure_as(metric_pool)
    return engine


def _create_postgres_engine(
    database: DatabaseUrl, pool_size: int, max_overflow: int | None, pre_ping: bool, pooled: bool
) -> AsyncEngine:
    engine = _postgres_engine(database, pool_size, max_overflow, pre_ping, pooled)
    if not pooled:
        event.listen(engine.sync_engine, "connect", _plan_every_execution)
    return engine


def _plan_every_execution(dbapi_connection: Any, _record: Any) -> None:
    """A reused prepared statement switches to a generic plan after five runs, planned
    for an average conversation: for one of 100,000 messages that plan sorts them all
    (38 ms) where the custom plan reads 51 rows off the index (0.04 ms, plus 0.08 ms of
    planning). Behind a transaction pooler no statement is reused (each is planned
    afresh), and a session setting would not stay with us: only on direct connections."""
    cursor = dbapi_connection.cursor()
    cursor.execute("SET plan_cache_mode = force_custom_plan")
    cursor.close()
    # the driver opened a transaction for it: a rollback at checkin would undo the SET
    dbapi_connection.commit()


def _postgres_engine(
    database: DatabaseUrl, pool_size: int, max_overflow: int | None, pre_ping: bool, pooled: bool
) -> AsyncEngine:
    return create_async_engine(
        database.url,
        connect_args=database.sqlalchemy_connect_args(pooled=pooled),
        poolclass=TimedQueuePool,
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
    in_memory = make_url(database_url).database in (None, "", ":memory:")
    engine = create_async_engine(
        database_url,
        connect_args={"timeout": busy_seconds},
        # an in-memory database keeps SQLAlchemy's own pool (one shared connection)
        **({} if in_memory else {"poolclass": TimedQueuePool}),
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
