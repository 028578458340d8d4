"""The per-request context: the session, the current user and the loaders, nothing else."""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.fastapi import BaseContext

from core.auth import Principal, TokenVerifier
from core.config import Settings
from core.cursors import CursorCodec
from core.errors import Unauthenticated
from db import users as user_queries
from db.models import User
from db.transactions import write_transaction

if TYPE_CHECKING:
    from live.broker import Broker
    from loaders import Loaders
    from services.chat import ChatService


class KnownUsers:
    """Subject → user row, for users already seen by this instance. A user row never
    changes once created, so this saves a lookup per request without going stale."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._users: OrderedDict[str, User] = OrderedDict()

    def get(self, subject: str) -> User | None:
        user = self._users.get(subject)
        if user is not None:
            self._users.move_to_end(subject)
        return user

    def add(self, subject: str, user: User) -> None:
        self._users[subject] = user
        if len(self._users) > self._capacity:
            self._users.popitem(last=False)


@dataclass(slots=True)
class Services:
    """What the app builds once at start-up and every request shares."""

    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    verifier: TokenVerifier
    cursors: CursorCodec
    broker: Broker
    chat: ChatService
    known_users: KnownUsers = field(default_factory=KnownUsers)


class Context(BaseContext):
    def __init__(
        self,
        services: Services,
        principal: Principal | None,
        request_id: str,
        operation_name: str | None = None,
        *,
        long_lived: bool = False,
    ) -> None:
        super().__init__()
        self.services = services
        self.principal = principal
        self.request_id = request_id
        self.operation_name = operation_name
        self._session: AsyncSession | None = None
        # AsyncSession is not safe for concurrent use, and sibling fields resolve
        # concurrently: every use of the request's session goes through this lock.
        self._session_lock = asyncio.Lock()
        self._user: User | None = None
        self._user_lookup: asyncio.Task[User] | None = None
        #: a WebSocket's context lives as long as the socket: no loader cache there
        self.long_lived = long_lived
        self._loaders: Loaders | None = None
        self.connection_params: dict[str, Any] | None = None
        #: per-connection bookkeeping of the transport (WebSocket slot, expiry timer)
        self.extras: dict[str, Any] = {}

    @property
    def loaders(self) -> Loaders:
        from loaders import Loaders

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
        child = Context(
            self.services, self.principal, self.request_id, self.operation_name, long_lived=True
        )
        child._user = self._user
        try:
            yield child
        finally:
            await child.close()

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """Reads of one request share one transaction (one snapshot, and no BEGIN and
        COMMIT round trips per read); it ends before a write and when the request does.
        A WebSocket's context ends it after every read instead."""
        async with self._session_lock:
            session = self._ensure_session()
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            if self.long_lived:
                await session.commit()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: everything inside commits together or not at all."""
        async with self._session_lock:
            session = await self._end_reads()
            async with write_transaction(session):
                yield session

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[AsyncSession]:
        """The session, for a use case that runs several units of work of its own."""
        async with self._session_lock:
            yield await self._end_reads()

    async def _end_reads(self) -> AsyncSession:
        session = self._ensure_session()
        if session.in_transaction():
            await session.commit()
        return session

    def _ensure_session(self) -> AsyncSession:
        if self._session is None:
            self._session = self.services.session_factory()
        return self._session

    async def close(self) -> None:
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
        return await self._user_lookup

    async def _find_or_create_user(self, subject: str) -> User:
        known = self.services.known_users.get(subject)
        if known is not None:
            self._user = known
            return known
        async with self.reading() as session:
            user = await user_queries.find_user(session, subject)
        if user is None:
            async with self.writing() as session:
                user = await user_queries.create_user(session, subject)
        # Detached, so a rollback later in the request (a key replayed after a conflict)
        # cannot expire it: reading an expired id would be IO outside a greenlet.
        self._ensure_session().expunge(user)
        self.services.known_users.add(subject, user)
        self._user = user
        return user

    async def user_id(self) -> uuid.UUID:
        return (await self.user()).id
