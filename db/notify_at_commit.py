"""NOTIFYs that go with their transaction's COMMIT: one round trip for both.

A write that announces a change (`live.broker`: "conversation X changed") queues its
notifications on the transaction's asyncpg connection instead of sending a statement of
their own; the COMMIT that asyncpg sends for the transaction carries them, as one simple
query (`SELECT pg_notify(...), ...; COMMIT;`). PostgreSQL delivers a transaction's
notifications when it commits either way, so listeners see the same thing, one round
trip sooner. A ROLLBACK drops them, as it drops a NOTIFY sent inside the transaction.

The notifications are written into the query text, so only channel names and payloads
of a safe alphabet are queued (ours are ids, times and names); anything else is refused
and the caller sends its statement as before. A queued notification whose savepoint is
rolled back still goes at the COMMIT: a notification with nothing new costs a listener
one re-read, no more.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import asyncpg

#: what may be written between quotes in the query text: no quote, no backslash
_SAFE = re.compile(r"[A-Za-z0-9_.:-]{1,200}")


class NotifyingConnection(asyncpg.Connection):  # type: ignore[misc]
    """asyncpg's connection (`connection_class`), with `notify_at_commit`."""

    __slots__ = ("_at_commit",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._at_commit: list[tuple[str, str]] = []

    def notify_at_commit(self, notifications: Sequence[tuple[str, str]]) -> bool:
        """Queues (channel, payload) pairs for the COMMIT of the transaction under way;
        false (nothing queued) when one of them cannot be written into the query."""
        if not self.is_in_transaction():
            return False
        if not all(_SAFE.fullmatch(c) and _SAFE.fullmatch(p) for c, p in notifications):
            return False
        self._at_commit.extend(notifications)
        return True

    # asyncpg's own signature, timeout included
    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:  # noqa: ASYNC109
        pending = self._at_commit
        if pending and not args:
            verb = query.strip().rstrip(";").strip().upper()
            if verb in ("COMMIT", "END", "COMMIT TRANSACTION"):
                calls = ", ".join(f"pg_notify('{c}', '{p}')" for c, p in pending)
                pending.clear()
                query = f"SELECT {calls}; {query}"
            elif verb in ("ROLLBACK", "ABORT", "ROLLBACK TRANSACTION"):
                pending.clear()
        result: str = await super().execute(query, *args, timeout=timeout)
        return result
