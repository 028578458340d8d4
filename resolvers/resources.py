"""What the app builds once at start-up (in `main.create_app`) and every request shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from cachetools import LRUCache
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from agent.turn import Assistant
from core.auth import TokenVerifier
from core.config import Settings
from core.cursors import CursorCodec
from db.models import User
from live.broker import Broker

KNOWN_USERS = 10_000


def _known_users() -> LRUCache[str, User]:
    return LRUCache(maxsize=KNOWN_USERS)


@dataclass(slots=True)
class AppResources:
    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    verifier: TokenVerifier
    cursors: CursorCodec
    broker: Broker
    assistant: Assistant
    #: token subject → user row, for users this instance has seen. A user row never
    #: changes once created, so this saves a lookup per request; `erase-user` may delete
    #: it, so a write re-checks a cached user's row first (`Context.writing`).
    known_users: LRUCache[str, User] = field(default_factory=_known_users)

    @property
    def engine(self) -> AsyncEngine:
        """The engine the sessions are bound to."""
        engine: AsyncEngine = self.session_factory.kw["bind"]
        return engine
