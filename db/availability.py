"""Is this error the database being unreachable (down, restarting, out of connections),
rather than something wrong with the request? Such errors answer SERVICE_UNAVAILABLE
with a retry hint instead of INTERNAL_SERVER_ERROR (see `schema.error_codes`)."""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa_exc

#: SQLSTATE classes of PostgreSQL that mean "the server or the connection is gone":
#: 08 connection exception, 57P01-03 shutdown / cannot connect now, 53300 too many
#: connections
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")

#: SQLite's own "try again later"
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database file", "disk i/o error")


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < 16:
        seen.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return seen


def _is_unavailable_one(error: BaseException) -> bool:
    if isinstance(error, sa_exc.TimeoutError):
        # the pool had no connection to give within its timeout
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
        return True
    if isinstance(error, sqlite3.OperationalError):
        return str(error).lower().startswith(_SQLITE_UNAVAILABLE)
    if type(error).__name__ == "ConnectionDoesNotExistError":
        return True
    if isinstance(error, ConnectionError | ConnectionRefusedError):
        return True
    # a connect that fails below the driver (refused, reset, no route) is a bare
    # OSError; a timeout alone is not one of ours to judge (the agent has its own)
    return isinstance(error, OSError) and not isinstance(error, TimeoutError)


def is_unavailable(error: BaseException) -> bool:
    """True when the database cannot be reached right now (retrying later may work)."""
    return any(_is_unavailable_one(link) for link in _chain(error))
