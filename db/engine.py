"""The async engine and session factory, with the SQLite settings that make it safe to
share between concurrent requests."""

from __future__ import annotations

import asyncio
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
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util import queue as sqla_queue

from core import jsontext
from core.database_url import DatabaseUrl, as_database_url
from core.metrics import DB_POOL_CHECKOUT_SECONDS
from db.driver import DIRECT
from db.notify_at_commit import NotifyingConnection

#: execution option asking SQLite for `BEGIN IMMEDIATE` (take the write lock up front)
SQLITE_WRITE = "taskchat_sqlite_write"


#: idle connections above the pool size are closed after this long unused
POOL_IDLE_SECONDS = 60.0
_IDLE_SINCE = "taskchat_idle_since"


class TimedQueuePool(AsyncAdaptedQueuePool):
    """The async queue pool, keeping what a burst opened and timing each checkout
    (`taskchat_db_pool_checkout_seconds`: a pool too small for the load shows there).

    SQLAlchemy's queue pool closes every connection above `pool_size` as soon as it is
    returned, so a worker with more requests in flight than that opened (TLS handshake,
    a forked backend) and closed a connection for most of them. This one keeps up to
    `pool_size + max_overflow` connections once opened, hands out the most recently
    used first (so a light load keeps reusing a few), and closes those above `keep`
    (the configured `pool_size`) that have sat unused for `idle_seconds`, as asyncpg's
    and node-postgres's pools do."""

    def __init__(
        self,
        creator: Any,
        pool_size: int = 5,
        max_overflow: int = 10,
        idle_seconds: float = POOL_IDLE_SECONDS,
        keep: int | None = None,
        **kwargs: Any,
    ) -> None:
        self._keep = pool_size if keep is None else keep
        self._idle_seconds = idle_seconds
        self._next_trim = time.monotonic() + idle_seconds
        capacity = pool_size if keep is not None else pool_size + max(0, max_overflow)
        kwargs["use_lifo"] = True
        super().__init__(creator, pool_size=capacity, max_overflow=0, **kwargs)
        self._checkout_seconds = DB_POOL_CHECKOUT_SECONDS.labels("app")

    def measure_as(self, name: str) -> None:
        self._checkout_seconds = DB_POOL_CHECKOUT_SECONDS.labels(name)

    def connect(self) -> PoolProxiedConnection:
        started = time.perf_counter()
        try:
            return super().connect()
        finally:
            self._checkout_seconds.observe(time.perf_counter() - started)

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()
        super()._do_return_conn(record)

    def _do_get(self) -> ConnectionPoolEntry:
        if time.monotonic() >= self._next_trim:
            self.close_idle()
        return super()._do_get()

    def close_idle(self) -> None:
        """What a checkout does every `idle_seconds / 2`, and `close_idle_connections`
        for a pool nobody uses (in a greenlet)."""
        now = time.monotonic()
        self._next_trim = now + self._idle_seconds / 2
        self._close_idle(now)

    @property
    def idle_seconds(self) -> float:
        return self._idle_seconds

    def _close_idle(self, now: float) -> None:
        """Closes the connections above `keep` idle longer than `idle_seconds`: all are
        taken off the queue at once (no await in between) and the rest put back in order."""
        in_use = self.checkedout()  # before the queue is emptied (it counts from its size)
        idle: list[ConnectionPoolEntry] = []
        while True:
            try:
                idle.append(self._pool.get_nowait())
            except sqla_queue.Empty:
                break
        idle.reverse()  # taken newest first: back to oldest first
        surplus = in_use + len(idle) - self._keep
        kept: list[ConnectionPoolEntry] = []
        closing: list[ConnectionPoolEntry] = []
        for record in idle:
            since = record.info.get(_IDLE_SINCE, now)
            if surplus > 0 and now - since >= self._idle_seconds:
                surplus -= 1
                closing.append(record)
            else:
                kept.append(record)
        for record in kept:
            self._pool.put_nowait(record)
        # closing may wait on the network: only once the rest are back for others to take
        for record in closing:
            try:
                record.close()
            finally:
                self._dec_overflow()

    def recreate(self) -> TimedQueuePool:
        # keeps the label and the limits when SQLAlchemy rebuilds the pool (after a
        # disconnect)
        pool = self.__class__(
            self._creator,
            pool_size=self._pool.maxsize,
            keep=self._keep,
            idle_seconds=self._idle_seconds,
            pre_ping=self._pre_ping,
            timeout=self._timeout,
            recycle=self._recycle,
            echo=self.echo,
            logging_name=self._orig_logging_name,
            reset_on_return=self._reset_on_return,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )
        pool._checkout_seconds = self._checkout_seconds
        return pool


async def close_idle_connections(*engines: AsyncEngine) -> None:
    """Runs for the application's life: an instance idle after a burst gives its
    connections above the pool size back to the server too."""
    pools = [
        pool
        for pool in dict.fromkeys(engine.sync_engine.pool for engine in engines)
        if isinstance(pool, TimedQueuePool)
    ]
    if not pools:
        return
    while True:
        await asyncio.sleep(min(pool.idle_seconds for pool in pools) / 2)
        for pool in pools:
            await greenlet_spawn(pool.close_idle)


def create_engine(
    database_url: str | DatabaseUrl,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
    pre_ping: bool = True,
    sqlite_busy_seconds: float = 30,
    pooled: bool = False,
    metric_pool: str = "app",
    pool_idle_seconds: float = POOL_IDLE_SECONDS,
) -> AsyncEngine:
    """`database_url` as pasted or normalised (core/database_url.py); `pooled`: it goes
    through a transaction pooler, so no prepared statement is reused; `metric_pool`
    labels the pool's checkout times (a few fixed names). PostgreSQL: `pool_size`
    connections are kept, up to `max_overflow` more while the load needs them
    (`TimedQueuePool`)."""
    database = as_database_url(database_url)
    if database.is_sqlite:
        engine = _create_sqlite_engine(database.render(), sqlite_busy_seconds)
    else:
        overflow = pool_size * 2 if max_overflow is None else max_overflow
        engine = _create_postgres_engine(
            database,
            pooled,
            pre_ping,
            pool_size=pool_size,
            max_overflow=overflow,
            idle_seconds=pool_idle_seconds,
        )
    if isinstance(engine.pool, TimedQueuePool):
        engine.pool.measure_as(metric_pool)
    return engine


def _create_postgres_engine(
    database: DatabaseUrl, pooled: bool, pre_ping: bool, **pool: Any
) -> AsyncEngine:
    """`pool`: `TimedQueuePool`'s limits."""
    engine = _postgres_engine(database, pooled, pre_ping, pool)
    if not pooled:
        # straight to PostgreSQL: asyncpg may run the hot statements itself (db/driver.py).
        # Their prepared statements are reused on PostgreSQL's own plan choice: a generic
        # plan saves the planning of every execution (~400 µs of PostgreSQL's CPU for a
        # conversation page) and reads a page of any conversation off the index
        # (tests/db/test_reused_plans.py, migration 0004).
        engine.update_execution_options(**{DIRECT: True})
    return engine


def _postgres_engine(
    database: DatabaseUrl, pooled: bool, pre_ping: bool, pool: dict[str, Any]
) -> AsyncEngine:
    return create_async_engine(
        database.url,
        connect_args={
            **database.sqlalchemy_connect_args(pooled=pooled),
            # a transaction's NOTIFYs go with its COMMIT (db/notify_at_commit.py)
            "connection_class": NotifyingConnection,
        },
        poolclass=TimedQueuePool,
        # JSON columns (a message's tool calls and metadata) by orjson
        json_serializer=jsontext.dumps,
        json_deserializer=jsontext.loads,
        **pool,
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
        json_serializer=jsontext.dumps,
        json_deserializer=jsontext.loads,
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
