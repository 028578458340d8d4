"""The per-request context: the resources every request shares, the token's principal,
the request's one session (and its lock), the current user and the loaders; plus the
transport's bookkeeping for a WebSocket (`extras`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.fastapi import BaseContext

from core.auth import Principal
from core.config import Settings
from core.errors import TaskchatError, Unauthenticated
from db import driver
from db import users as user_queries
from db.models import User
from db.transactions import read_options, write_transaction
from resolvers.loaders import Loaders
from resolvers.resources import AppResources

T = TypeVar("T")


class Context(BaseContext):
    def __init__(
        self,
        app: AppResources,
        principal: Principal | None,
        request_id: str,
        *,
        long_lived: bool = False,
    ) -> None:
        super().__init__()
        self.app = app
        self.principal = principal
        self.request_id = request_id
        self._session: AsyncSession | None = None
        # AsyncSession is not safe for concurrent use, and sibling fields resolve
        # concurrently: every use of the request's session goes through this lock.
        self._session_lock = asyncio.Lock()
        self._reads: set[asyncio.Future[Any]] = set()
        self._user: User | None = None
        #: the user's row was read or written by this context (not only known from the
        #: cache of users this instance has seen)
        self._user_checked = False
        self._user_lookup: asyncio.Task[User] | None = None
        #: a WebSocket's context lives as long as the socket: no loader cache there
        self.long_lived = long_lived
        self._loaders: Loaders | None = None
        self.connection_params: dict[str, Any] | None = None
        #: per-connection bookkeeping of the transport (WebSocket slot, expiry timer)
        self.extras: dict[str, Any] = {}

    @property
    def loaders(self) -> Loaders:
        if self.long_lived:
            return Loaders(self)
        if self._loaders is None:
            self._loaders = Loaders(self)
        return self._loaders

    @asynccontextmanager
    async def fork(self) -> AsyncIterator[Context]:
        """A context of its own (session, lock, loaders) for one long operation."""
        # long-lived: each read ends its transaction, or a subscription would keep
        # reading one old snapshot (SQLite) and never see new messages
        child = Context(self.app, self.principal, self.request_id, long_lived=True)
        child._user = self._user
        child._user_checked = self._user_checked
        try:
            yield child
        finally:
            await child.close()

    @property
    def settings(self) -> Settings:
        return self.app.settings

    async def read(self, query: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Runs `query` on the request's session. Reads of one request share one
        transaction (one snapshot, and no BEGIN and COMMIT round trips per read); it ends
        before a write and when the request does. A WebSocket's context ends it after
        every read instead.

        The read runs to completion even if its caller is cancelled: when one field
        fails, graphql-core cancels its siblings, and a statement cut off mid-flight
        would leave the connection broken for the next request that gets it. The
        cancellation takes effect once the read is done (`close` waits for it)."""
        return await self._shielded(self._read(query))

    async def rows(self, kept: driver.Kept, values: dict[str, Any]) -> driver.Rows:
        """A kept statement's rows (`driver.RowReader`). Before the request has a session
        (a compiled page, the request's one read): on a pooled connection of its own
        (`driver.lone_rows`), with no session to make and close. After: on the session,
        as `read` runs it. Either way it runs to completion if its caller is cancelled."""
        if self._session is not None:
            return await self.read(lambda session: driver.rows(session, kept, values))
        return await self._shielded(driver.lone_rows(self.app.engine, kept, values))

    async def _shielded(self, work: Awaitable[T]) -> T:
        read = asyncio.ensure_future(work)
        self._reads.add(read)
        read.add_done_callback(self._reads.discard)
        return await asyncio.shield(read)

    async def _read(self, query: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self._session_lock:
            session = self._ensure_session()
            for attempt in (1, 2):
                try:
                    if not session.in_transaction():
                        await session.connection(execution_options=self._read_options())
                    result = await query(session)
                except DBAPIError as error:
                    await session.rollback()
                    # a pooled connection the server dropped (no pre-ping checks them):
                    # the read runs once more on a fresh one
                    if attempt == 1 and error.connection_invalidated:
                        continue
                    raise
                except BaseException:
                    await session.rollback()
                    raise
                if self.long_lived:
                    await session.commit()
                return result
            raise AssertionError("unreachable")

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: everything inside commits together or not at all."""
        async with self._session_lock:
            session = await self._end_reads()
            async with write_transaction(session):
                await self._ensure_user_row(session)
                yield session

    @asynccontextmanager
    async def exclusive(self, *, user_row: bool = True) -> AsyncIterator[AsyncSession]:
        """The session, for a use case that runs several units of work of its own.
        `user_row=False`: the use case writes only under a row of the user's it finds
        first (a turn in an existing conversation: an erased user's conversations are
        gone with them, so it answers NOT_FOUND and writes nothing), and the check that a
        user known from the cache still has a row (a round trip) is left out."""
        async with self._session_lock:
            session = await self._end_reads()
            if user_row and self._needs_user_check():
                # a read first: a write transaction here would queue behind any running
                # turn on SQLite (one writer), a stop request included
                assert self._user is not None
                user_id = self._user.id
                # (PostgreSQL: in autocommit, one round trip and no transaction)
                await session.connection(execution_options=self._read_options())
                try:
                    exists = await user_queries.user_exists(session, user_id)
                except BaseException:
                    await session.rollback()
                    raise
                await session.commit()
                if exists:
                    self._user_checked = True
                else:
                    async with write_transaction(session):
                        await self._ensure_user_row(session)
            yield session

    async def _end_reads(self) -> AsyncSession:
        session = self._ensure_session()
        if session.in_transaction():
            await session.commit()
        return session

    def _ensure_session(self) -> AsyncSession:
        if self._session is None:
            self._session = self.app.session_factory()
        return self._session

    def _read_options(self) -> dict[str, Any]:
        # PostgreSQL reads run in autocommit: no BEGIN and ROLLBACK round trips
        return read_options(self._ensure_session())

    async def close(self) -> None:
        # reads (and the user lookup) their cancelled callers left running: the session
        # is theirs until they end (closing it under a commit would fail the request)
        pending = [*self._reads]
        if self._user_lookup is not None:
            pending.append(self._user_lookup)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def user(self) -> User:
        """The token's user, created on first sight; `UNAUTHENTICATED` without a token."""
        if self._user is not None:
            return self._user
        if self.principal is None:
            raise Unauthenticated("authentication required: send 'Authorization: Bearer <token>'")
        # Sibling fields ask at once: they share one lookup instead of one each, and resume
        # together, so the DataLoader calls they make next fall into one batch.
        if self._user_lookup is None or self._user_lookup.done():
            lookup = self._find_or_create_user(self.principal.subject)
            self._user_lookup = asyncio.create_task(lookup)
        # shielded: a cancelled sibling must not cancel the lookup the others share
        return await asyncio.shield(self._user_lookup)

    async def _find_or_create_user(self, subject: str) -> User:
        known = self.app.known_users.get(subject)
        if known is not None:
            self._user = known
            self._user_checked = False
            return known
        user = await self.read(lambda session: user_queries.find_user(session, subject))
        if user is None:
            async with self.writing() as session:
                user = await user_queries.create_user(session, subject)
        # Detached, so a rollback later in the request (a key replayed after a conflict)
        # cannot expire it: reading an expired id would be IO outside a greenlet.
        self._ensure_session().expunge(user)
        self.app.known_users[subject] = user
        self._user = user
        self._user_checked = True
        return user

    def _needs_user_check(self) -> bool:
        # a socket lives long: an erase may come between two of its writes
        return self._user is not None and (self.long_lived or not self._user_checked)

    async def _ensure_user_row(self, session: AsyncSession) -> None:
        """Before a write by a user known from the cache: their row may have been erased
        (`erase-user`) since; it comes back empty, under the same id."""
        user = self._user
        if user is None or not self._needs_user_check():
            return
        if not await user_queries.ensure_user(session, user):
            # the subject has a new row (made by an instance that did not know it): this
            # request holds the old id, the next one finds the new row
            self.app.known_users.pop(user.subject, None)
            raise TaskchatError("the account changed meanwhile; try again")
        self._user_checked = True

    async def user_id(self) -> uuid.UUID:
        return (await self.user()).id
