"""Fan-out of "conversation X has new messages" to subscribers on every instance, and of
the reply lifecycle: "stop the turn of conversation X" and "reply M has new chunks".

A notification carries ids only; subscribers load the rows themselves, newer than the
last one they delivered, so a missed or merged notification costs nothing: the next one
(or the resync after a reconnect) brings them up to date, in order. Each subscriber
holds one flag, not a queue, so a slow consumer cannot make memory grow.

PostgreSQL: one LISTEN connection per instance (not per subscriber), on three channels;
a write's announcements are NOTIFYs in its transaction, delivered when it commits (sent
with the COMMIT itself where they can be: db/notify_at_commit.py). Every payload is one id, so
an older instance (which listens to `taskchat_messages` only, and parses its payload as
a conversation id) is never confused by the newer channels. SQLite: in-process only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

import asyncpg
from sqlalchemy import TextClause, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from core.database_url import DatabaseUrl, as_database_url
from core.logging import get_logger
from core.metrics import FANOUT_LAG_SECONDS

log = get_logger("taskchat.live")

CHANNEL = "taskchat_messages"
#: "stop the running turn of this conversation" (payload: the conversation id)
STOP_CHANNEL = "taskchat_stops"
#: "this reply has new chunks, or ended" (payload: the reply's message id)
REPLY_CHANNEL = "taskchat_replies"
#: how the LISTEN connection shows in pg_stat_activity (unless the URL names one)
LISTEN_APPLICATION_NAME = "taskchat-listen"


#: a change to announce: (channel, the id its subscribers listen to)
Announcement = tuple[str, uuid.UUID]


def messages_changed(key: uuid.UUID) -> Announcement:
    """Conversation `key` has new messages, or (a user's id) the user's conversations
    changed (`conversationEvents`)."""
    return (CHANNEL, key)


def reply_changed(message_id: uuid.UUID) -> Announcement:
    return (REPLY_CHANNEL, message_id)


class Signal:
    """Set when the conversation changed since the subscriber last looked."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event.clear()


class Broker(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, conversation_id: uuid.UUID) -> None: ...
    def listen(
        self, conversation_id: uuid.UUID
    ) -> contextlib.AbstractAsyncContextManager[Signal]: ...
    async def publish_stop(self, conversation_id: uuid.UUID) -> None: ...
    def listen_stop(
        self, conversation_id: uuid.UUID
    ) -> contextlib.AbstractAsyncContextManager[Signal]: ...
    async def publish_reply(self, message_id: uuid.UUID) -> None: ...
    async def publish_on_commit(
        self, session: AsyncSession, announcements: Sequence[Announcement]
    ) -> None:
        """Announces changes with the transaction `session` is in: they are delivered when
        it commits (not at all if it rolls back), at no cost of a transaction of their own."""
        ...

    def listen_reply(
        self, message_id: uuid.UUID
    ) -> contextlib.AbstractAsyncContextManager[Signal]: ...


class _LocalFanOut:
    def __init__(self) -> None:
        self._signals: dict[uuid.UUID, set[Signal]] = {}

    @asynccontextmanager
    async def listen(self, conversation_id: uuid.UUID) -> AsyncIterator[Signal]:
        signal = Signal()
        self._signals.setdefault(conversation_id, set()).add(signal)
        try:
            yield signal
        finally:
            listeners = self._signals.get(conversation_id)
            if listeners is not None:
                listeners.discard(signal)
                if not listeners:
                    del self._signals[conversation_id]

    def notify(self, conversation_id: uuid.UUID, published_at: float | None = None) -> None:
        """`published_at`: the publisher's `time.time()`, for the fan-out lag metric."""
        signals = self._signals.get(conversation_id, ())
        for signal in signals:
            signal.set()
        if signals and published_at is not None:
            # another host's clock may run ahead a little
            FANOUT_LAG_SECONDS.observe(max(0.0, time.time() - published_at))

    def notify_all(self) -> None:
        for listeners in self._signals.values():
            for signal in listeners:
                signal.set()


class _Channels(_LocalFanOut):
    """The messages fan-out (self) and the two of the reply lifecycle."""

    def __init__(self) -> None:
        super().__init__()
        self._stops = _LocalFanOut()
        self._replies = _LocalFanOut()

    def listen_stop(
        self, conversation_id: uuid.UUID
    ) -> contextlib.AbstractAsyncContextManager[Signal]:
        return self._stops.listen(conversation_id)

    def listen_reply(self, message_id: uuid.UUID) -> contextlib.AbstractAsyncContextManager[Signal]:
        return self._replies.listen(message_id)


class LocalBroker(_Channels):
    """One process (SQLite, or tests)."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, conversation_id: uuid.UUID) -> None:
        self.notify(conversation_id, time.time())

    async def publish_stop(self, conversation_id: uuid.UUID) -> None:
        self._stops.notify(conversation_id)

    async def publish_reply(self, message_id: uuid.UUID) -> None:
        self._replies.notify(message_id)

    async def publish_on_commit(
        self, session: AsyncSession, announcements: Sequence[Announcement]
    ) -> None:
        published_at = time.time()
        fan_outs = {CHANNEL: self, STOP_CHANNEL: self._stops, REPLY_CHANNEL: self._replies}

        def deliver() -> None:
            for channel, key in announcements:
                fan_outs[channel].notify(key, published_at if channel == CHANNEL else None)

        _after_commit(session.sync_session, deliver)


class PostgresBroker(_Channels):
    def __init__(self, engine: AsyncEngine, database_url: str | DatabaseUrl) -> None:
        super().__init__()
        self._engine = engine
        self._dsn, self._connect_args = _asyncpg_dsn(database_url)
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="taskchat-listen")
        # serve without waiting forever if the database is down; the loop keeps trying
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout=5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def publish(self, conversation_id: uuid.UUID) -> None:
        await self._notify(CHANNEL, conversation_id)

    async def publish_stop(self, conversation_id: uuid.UUID) -> None:
        await self._notify(STOP_CHANNEL, conversation_id)

    async def publish_reply(self, message_id: uuid.UUID) -> None:
        await self._notify(REPLY_CHANNEL, message_id)

    async def publish_on_commit(
        self, session: AsyncSession, announcements: Sequence[Announcement]
    ) -> None:
        # NOTIFY in a transaction is delivered at its commit, to every instance
        if not announcements:
            return
        published_at = f"{time.time():.6f}"
        pairs = [(channel, f"{key}:{published_at}") for channel, key in announcements]
        # with the COMMIT itself, where the connection can (db/notify_at_commit.py)
        raw = await (await session.connection()).get_raw_connection()
        notify_at_commit = getattr(raw.driver_connection, "notify_at_commit", None)
        if notify_at_commit is not None and notify_at_commit(pairs):
            return
        params: dict[str, str] = {}
        for n, (channel, payload) in enumerate(pairs):
            params[f"c{n}"], params[f"p{n}"] = channel, payload
        await session.execute(_notify_statement(len(announcements)), params)

    async def _notify(self, channel: str, key: uuid.UUID) -> None:
        async with self._engine.connect() as connection:
            await connection.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": channel, "payload": f"{key}:{time.time():.6f}"},
            )
            await connection.commit()

    def _on_notification(self, _connection: object, _pid: int, channel: str, payload: str) -> None:
        # "<id>:<publish time>"; older instances sent the id alone, or appended
        # ":<message id>" on CHANNEL
        key, _, rest = payload.partition(":")
        published_at: float | None = None
        with contextlib.suppress(ValueError):
            published_at = float(rest)
        fan_out = {STOP_CHANNEL: self._stops, REPLY_CHANNEL: self._replies}.get(channel)
        with contextlib.suppress(ValueError):
            if fan_out is None:
                self.notify(uuid.UUID(key), published_at)
            else:
                fan_out.notify(uuid.UUID(key))

    async def _listen_forever(self) -> None:
        delay = 0.2
        while True:
            try:
                connection = await asyncpg.connect(self._dsn, **self._connect_args)
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("listen connection failed; retrying", error=type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
                continue
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _c, lost=lost: lost.set())
            try:
                for channel in (CHANNEL, STOP_CHANNEL, REPLY_CHANNEL):
                    await connection.add_listener(channel, self._on_notification)
                delay = 0.2
                self._connected.set()
                # whatever was published while we were away: subscribers re-read (a stop
                # missed meanwhile is not replayed: the stopper waits and asks again)
                self.notify_all()
                self._replies.notify_all()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=10)
                    if not lost.is_set() and not await _alive(connection):
                        break
                log.warning("listen connection lost; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("listen connection failed; reconnecting")
            finally:
                self._connected.clear()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), timeout=2)


_NOTIFY_STATEMENTS: dict[int, TextClause] = {}


def _notify_statement(count: int) -> TextClause:
    """`SELECT pg_notify(:c0, :p0), pg_notify(:c1, :p1), …`: one statement (and round
    trip) for a commit's announcements, built once per count."""
    statement = _NOTIFY_STATEMENTS.get(count)
    if statement is None:
        calls = ", ".join(f"pg_notify(:c{n}, :p{n})" for n in range(count))
        statement = _NOTIFY_STATEMENTS[count] = text(f"SELECT {calls}")
    return statement


#: `Session.info` key: what waits for the session's transaction to commit
_ON_COMMIT = "taskchat_on_commit"


def _after_commit(session: Session, deliver: Callable[[], None]) -> None:
    """Calls `deliver` once the transaction `session` is in has committed; never if it
    rolls back. (A savepoint's commit is not the transaction's; call this outside one.)"""
    if session.get_transaction() is None:
        raise RuntimeError("an announcement on commit needs a transaction")
    waiting: list[Callable[[], None]] | None = session.info.get(_ON_COMMIT)
    if waiting is None:
        waiting = session.info[_ON_COMMIT] = []
        event.listen(session, "after_commit", _deliver_waiting)
        event.listen(session, "after_soft_rollback", _drop_waiting)
    waiting.append(deliver)


def _deliver_waiting(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint's
    waiting: list[Callable[[], None]] = session.info[_ON_COMMIT]
    delivering, waiting[:] = list(waiting), []
    for deliver in delivering:
        deliver()


def _drop_waiting(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:
        session.info[_ON_COMMIT].clear()


async def _alive(connection: asyncpg.Connection) -> bool:
    try:
        await asyncio.wait_for(connection.execute("SELECT 1"), timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return True


def _asyncpg_dsn(database_url: str | DatabaseUrl) -> tuple[str, dict[str, object]]:
    """The direct URL as asyncpg wants it (libpq parameters translated, see
    core/database_url.py): LISTEN needs a session, which no transaction pooler keeps."""
    database = as_database_url(database_url)
    if database.asyncpg_dsn is None:
        raise ValueError("LISTEN needs a PostgreSQL URL")
    connect_args: dict[str, object] = dict(database.connect_args)
    if "application_name=" not in database.asyncpg_dsn:
        connect_args["server_settings"] = {"application_name": LISTEN_APPLICATION_NAME}
    return database.asyncpg_dsn, connect_args


def build_broker(engine: AsyncEngine, database_url: str | DatabaseUrl) -> Broker:
    """`engine` publishes (any connection will do, pooled too); `database_url` is the
    direct URL the LISTEN connection uses."""
    if engine.dialect.name == "postgresql":
        return PostgresBroker(engine, database_url)
    return LocalBroker()
