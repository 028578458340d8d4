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

Other SQL of ours rides along the same way (`carry_with_begin`, `carry_after_commit`): a
turn takes its conversation's lock in the query of its first transaction's BEGIN and lets
it go in the query of its last COMMIT (db/locks.py), two round trips fewer than a
statement of their own each.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import asyncpg

#: what may be written between quotes in the query text: no quote, no backslash
_SAFE = re.compile(r"[A-Za-z0-9_.:-]{1,200}")


class Carried:
    """SQL (ours: no parameters, nothing from a client) sent in the simple query of a
    transaction's BEGIN or COMMIT, and what became of it: `sent` once that query ran
    without an error, `failed` once it raised (asyncpg's transaction did not start, or
    its end is in doubt), both false while it waits (and after a ROLLBACK dropped it)."""

    __slots__ = ("failed", "sent", "sql")

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.sent = False
        self.failed = False


class NotifyingConnection(asyncpg.Connection):  # type: ignore[misc]
    """asyncpg's connection (`connection_class`), with `notify_at_commit`."""

    __slots__ = ("_after_commit", "_at_commit", "_with_begin")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._at_commit: list[tuple[str, str]] = []
        self._with_begin: Carried | None = None
        self._after_commit: Carried | None = None

    def carry_with_begin(self, sql: str | None) -> Carried | None:
        """`sql` runs right after the next BEGIN, in its query and its transaction (an
        error there fails the BEGIN); `None` takes back what waits."""
        self._with_begin = None if sql is None else Carried(sql)
        return self._with_begin

    def carry_after_commit(self, sql: str) -> Carried:
        """`sql` runs right after the COMMIT of the transaction under way (or the next),
        in its query and so only if the COMMIT succeeded; a ROLLBACK drops it."""
        self._after_commit = Carried(sql)
        return self._after_commit

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
        if args or not (self._at_commit or self._with_begin or self._after_commit):
            result: str = await super().execute(query, *args, timeout=timeout)
            return result
        verb = query.strip().rstrip(";").strip().upper()
        carried: Carried | None = None
        if verb in ("COMMIT", "END", "COMMIT TRANSACTION"):
            if self._at_commit:
                calls = ", ".join(f"pg_notify('{c}', '{p}')" for c, p in self._at_commit)
                self._at_commit.clear()
                query = f"SELECT {calls}; {query}"
            carried, self._after_commit = self._after_commit, None
            if carried is not None:
                query = f"{query.rstrip().rstrip(';')}; {carried.sql}"
        elif verb in ("ROLLBACK", "ABORT", "ROLLBACK TRANSACTION"):
            self._at_commit.clear()
            self._after_commit = None
        elif verb.startswith("BEGIN") and self._with_begin is not None:
            carried, self._with_begin = self._with_begin, None
            query = f"{query.rstrip().rstrip(';')}; {carried.sql}"
        try:
            result = await super().execute(query, timeout=timeout)
        except BaseException:
            if carried is not None:
                carried.failed = True
            raise
        if carried is not None:
            carried.sent = True
        return result
