"""A reply while it is written: its stream kept so that any instance can serve it, and
`replyStream`, which joins it.

A turn numbers its reply's stream (`sequence` 1, 2, 3, … over text pieces and tool
calls; `offset` is where a piece starts in the content, in code points) and hands each
entry to a `ReplyWriter`. On PostgreSQL the writer batches: one INSERT of every entry
since the last flush and one NOTIFY every `FLUSH_SECONDS` at most, whatever the delta
rate, so the write cost per delta is bounded (and measured in tests/live). On SQLite,
one process serves everything: entries are kept in memory (a turn may hold SQLite's only
write lock while the model streams, so a table could not take them meanwhile).

Entries are written before the reply's final status commits: a reader that sees the
status finished has every entry. `follow_reply` reads the status first, then the entries
after its position, and waits for the next notification, so it delivers each entry once,
in order, whichever instance writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.errors import NotFound
from core.logging import get_logger
from db import messages as message_queries
from db import reply_chunks as chunk_queries
from db.models import Message, MessageRole, MessageStatus
from db.reply_chunks import ChunkRow as ChunkRow  # a writer hands its rest over as these
from live.broker import REPLY_CHANNEL, Broker

log = get_logger("taskchat.replies")

#: a batch of entries is written (and announced) this often at most
FLUSH_SECONDS = 0.05
#: a reader looks again this often without a notification (a lost one, a dead writer)
POLL_SECONDS = 1.0
#: SQLite: how long a finished reply's entries stay in memory for readers catching up
RETAIN_SECONDS = 60.0
READ_BATCH = 500
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReplyEntry:
    """One numbered event of a reply's stream: text (`tool_call` None) or a tool call."""

    sequence: int
    offset: int
    text: str
    tool_call: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ReplyOpened:
    """`replyStream` joined a STREAMING reply from its start."""

    message: Message


@dataclass(frozen=True, slots=True)
class ReplyEnded:
    message: Message


ReplyItem = ReplyOpened | ReplyEntry | ReplyEnded


@dataclass(slots=True)
class WriteStats:
    """What keeping streams cost: statements (batches), entries and seconds spent."""

    batches: int = 0
    entries: int = 0
    seconds: float = 0.0


class ReplyWriter(Protocol):
    async def add(self, entry: ReplyEntry) -> None: ...
    async def close(self) -> None:
        """Everything added is stored (and announced) when this returns."""
        ...

    async def hand_over(self) -> list[ChunkRow]:
        """Like `close`, but what is still unwritten is returned, for the transaction
        that ends the reply (and announces it, `reply_changed`) to write, so the last
        entries and the final status commit together (`db.reply_end`). Should that
        transaction roll back, `close` writes them on its own."""
        ...


class ReplyJournal(Protocol):
    stats: WriteStats

    def writer(self, message_id: uuid.UUID) -> ReplyWriter: ...
    async def entries_after(self, message_id: uuid.UUID, sequence: int) -> list[ReplyEntry]: ...


# --- in memory (SQLite: one process) ---------------------------------------------------


class _MemoryWriter:
    def __init__(self, journal: MemoryJournal, message_id: uuid.UUID) -> None:
        self._journal = journal
        self._message_id = message_id
        self._entries = journal._streams.setdefault(message_id, [])

    async def add(self, entry: ReplyEntry) -> None:
        self._entries.append(entry)
        self._journal.stats.entries += 1
        await self._journal._broker.publish_reply(self._message_id)

    async def close(self) -> None:
        streams, message_id = self._journal._streams, self._message_id
        asyncio.get_running_loop().call_later(RETAIN_SECONDS, lambda: streams.pop(message_id, None))

    async def hand_over(self) -> list[ChunkRow]:
        await self.close()  # kept in memory: nothing left to write
        return []


class MemoryJournal:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._streams: dict[uuid.UUID, list[ReplyEntry]] = {}
        self.stats = WriteStats()

    def writer(self, message_id: uuid.UUID) -> ReplyWriter:
        return _MemoryWriter(self, message_id)

    async def entries_after(self, message_id: uuid.UUID, sequence: int) -> list[ReplyEntry]:
        entries = self._streams.get(message_id, [])
        # entries are numbered 1, 2, 3, …: entry n is at index n - 1
        return entries[sequence:]


# --- in a table (PostgreSQL: every instance) -------------------------------------------


class _TableWriter:
    """Batches: the first entry after a flush sets a timer (`FLUSH_SECONDS`), whose end
    writes everything added meanwhile. A reply handed over (or closed) before the timer
    ends costs no batch, no task and no timer's wake-up of its own."""

    def __init__(self, journal: TableJournal, message_id: uuid.UUID) -> None:
        self._journal = journal
        self._message_id = message_id
        self._pending: list[ReplyEntry] = []
        #: entries handed to a transaction that has not committed yet (`hand_over`)
        self._in_transaction: list[ReplyEntry] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Future[None] | None = None
        self._closed = False

    async def add(self, entry: ReplyEntry) -> None:
        self._pending.append(entry)
        self._flush_later()

    def _flush_later(self) -> None:
        if self._timer is None and self._flushing is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(FLUSH_SECONDS, self._flush_due)

    def _flush_due(self) -> None:
        self._timer = None
        if not self._closed:
            self._flushing = asyncio.ensure_future(self._flush_in_background())

    async def _flush_in_background(self) -> None:
        try:
            await self._flush()
        except Exception:  # the database blinked: the batch waits for the next flush
            log.warning("could not store a batch of reply chunks; retrying")
        finally:
            self._flushing = None
            if self._pending:  # added meanwhile, or not written: the next interval's
                self._flush_later()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        started = time.perf_counter()
        try:
            await self._journal._write(self._message_id, batch)
        except BaseException:
            self._pending = batch + self._pending
            raise
        stats = self._journal.stats
        stats.batches += 1
        stats.entries += len(batch)
        stats.seconds += time.perf_counter() - started

    async def _stop_flushing(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flushing is not None:
            await asyncio.shield(self._flushing)

    async def close(self) -> None:
        await self._stop_flushing()
        self._pending, self._in_transaction = self._in_transaction + self._pending, []
        await asyncio.shield(self._flush())

    async def hand_over(self) -> list[ChunkRow]:
        await self._stop_flushing()
        batch, self._pending = self._pending, []
        self._in_transaction += batch
        stats = self._journal.stats
        stats.batches += 1 if batch else 0
        stats.entries += len(batch)
        return _chunk_rows(batch)


class TableJournal:
    """`session_factory` is of an engine of its own: a turn holding its unit of work's
    connection must never wait for another one of the same pool to flush its stream."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory
        self.stats = WriteStats()

    def writer(self, message_id: uuid.UUID) -> ReplyWriter:
        return _TableWriter(self, message_id)

    async def _write(self, message_id: uuid.UUID, batch: list[ReplyEntry]) -> None:
        # one transaction: the batch and its notification (delivered at the commit)
        async with self._session_factory() as session, session.begin():
            await chunk_queries.add_chunks(session, message_id, _chunk_rows(batch))
            await chunk_queries.notify(session, REPLY_CHANNEL, str(message_id))

    async def entries_after(self, message_id: uuid.UUID, sequence: int) -> list[ReplyEntry]:
        entries: list[ReplyEntry] = []
        while True:
            async with self._session_factory() as session, session.begin():
                rows = await chunk_queries.chunks_after(session, message_id, sequence, READ_BATCH)
            entries += [ReplyEntry(*entry) for entry in chunk_queries.unpack(rows, sequence)]
            if len(rows) < READ_BATCH:
                return entries
            sequence = rows[-1].sequence


def _chunk_rows(batch: list[ReplyEntry]) -> list[ChunkRow]:
    """The batch as stored: consecutive pieces of text in one row (db/reply_chunks.py)."""
    return chunk_queries.pack(
        [(entry.sequence, entry.offset, entry.text, entry.tool_call) for entry in batch]
    )


def build_reply_journal(engine: AsyncEngine, broker: Broker) -> ReplyJournal:
    """`engine`: the journal's own (PostgreSQL), or the application's (SQLite)."""
    if engine.dialect.name == "postgresql":
        return TableJournal(async_sessionmaker(engine, expire_on_commit=False))
    return MemoryJournal(broker)


# --- replyStream -----------------------------------------------------------------------


async def _read(
    session_factory: async_sessionmaker[AsyncSession],
    query: Callable[[AsyncSession], Awaitable[T]],
) -> T:
    """A read on a session of its own, run to completion even if the stream is closed
    meanwhile (a statement cut off mid-flight would break its pooled connection)."""

    async def run() -> T:
        async with session_factory() as session, session.begin():
            return await query(session)

    return await asyncio.shield(asyncio.ensure_future(run()))


async def follow_reply(
    session_factory: async_sessionmaker[AsyncSession],
    broker: Broker,
    journal: ReplyJournal,
    user_id: uuid.UUID,
    message_id: uuid.UUID,
    after_sequence: int | None,
) -> AsyncIterator[ReplyItem]:
    """A reply's stream from any instance: a finished reply is `ReplyEnded` at once; a
    STREAMING one gives `ReplyOpened` (when joined from the start), its entries after
    `after_sequence`, live ones, then `ReplyEnded`. `NOT_FOUND` unless it is the user's
    assistant message."""

    async def owned(session: AsyncSession) -> Message | None:
        found = await message_queries.get_messages(session, user_id, [message_id])
        return found[0] if found else None

    # listen first, then read: nothing falls between the two
    async with broker.listen_reply(message_id) as signal:
        reply = await _read(session_factory, owned)
        if reply is None or reply.role != MessageRole.ASSISTANT:
            raise NotFound("message")
        if reply.status != MessageStatus.STREAMING:
            yield ReplyEnded(reply)
            return
        position = 0 if after_sequence is None else after_sequence
        if after_sequence is None:
            yield ReplyOpened(reply)
        while True:
            # the status first: once it is final, every entry is stored
            current = await _read(session_factory, owned)
            if current is None:  # deleted meanwhile
                return
            for entry in await journal.entries_after(message_id, position):
                if entry.sequence != position + 1:
                    break  # not stored in order yet (cannot happen with one writer)
                position = entry.sequence
                yield entry
            if current.status != MessageStatus.STREAMING:
                yield ReplyEnded(current)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), POLL_SECONDS)


def text_of(entries: list[ReplyEntry]) -> str:
    return "".join(entry.text for entry in entries)


@dataclass(slots=True)
class StreamedSoFar:
    """What a writer was given, for a reply ended by someone else than its turn."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
