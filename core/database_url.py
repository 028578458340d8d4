"""Database URLs as providers print them, made into what SQLAlchemy and asyncpg take.

Neon's console, Heroku, Supabase and libpq tools write `postgres://` or `postgresql://`
URLs with libpq parameters (`sslmode`, `channel_binding`, `connect_timeout`, …). Our
driver is asyncpg: SQLAlchemy hands the URL's query to `asyncpg.connect()` as keyword
arguments (so `sslmode` is a TypeError), and asyncpg sends any parameter it does not
know to the server as a setting (so `channel_binding` is refused by PostgreSQL). Here, in
one place, the scheme becomes `postgresql+asyncpg`, the parameters asyncpg understands
are kept in a DSN that asyncpg parses itself (libpq's `sslmode` semantics included),
a few are translated, and the rest are dropped with a note. A URL the server cannot use
is a `DatabaseUrlError` with a one-line message (Settings makes it a ConfigError).
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

#: libpq parameters asyncpg's own DSN parser understands (asyncpg/connect_utils.py)
_ASYNCPG_PARAMS = frozenset(
    {
        "host",
        "port",
        "dbname",
        "database",
        "user",
        "password",
        "passfile",
        "sslmode",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslnegotiation",
        "sslcrl",
        "sslpassword",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "target_session_attrs",
        "krbsrvname",
        "gsslib",
        "service",
    }
)
#: parameters that are server settings sent at start-up (asyncpg's `server_settings`)
_SERVER_SETTINGS = frozenset({"application_name", "options"})
_SSLMODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
#: libpq-only parameters asyncpg cannot honour, and why we go on without them
_DROPPED = {
    "channel_binding": "asyncpg does not do SCRAM channel binding; TLS still follows sslmode",
    "gssencmode": "asyncpg does not do GSSAPI encryption",
    "sslcompression": "TLS compression is obsolete",
    "sslsni": "asyncpg always sends SNI",
    "keepalives": "TCP keepalives are left to the operating system",
    "keepalives_idle": "TCP keepalives are left to the operating system",
    "keepalives_interval": "TCP keepalives are left to the operating system",
    "keepalives_count": "TCP keepalives are left to the operating system",
    "tcp_user_timeout": "not supported by asyncpg",
    "client_encoding": "asyncpg always speaks UTF-8",
    "pgbouncer": "a Prisma flag; taskchat detects a pooler from DATABASE_DIRECT_URL",
}


class DatabaseUrlError(ValueError):
    """A database URL the server cannot use; the message is one line, without secrets."""


@dataclass(frozen=True)
class DatabaseUrl:
    """A normalised database URL.

    `url` is what SQLAlchemy gets (driver set, no query for PostgreSQL); `asyncpg_dsn`
    and `connect_args` are what asyncpg gets, directly (LISTEN) or through SQLAlchemy.
    """

    url: URL
    asyncpg_dsn: str | None = None
    connect_args: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def dialect(self) -> Literal["sqlite", "postgresql"]:
        return "sqlite" if self.url.get_backend_name() == "sqlite" else "postgresql"

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def host(self) -> str | None:
        return self.url.host

    def render(self) -> str:
        """The SQLAlchemy URL, password included (for Alembic and child processes)."""
        return self.url.render_as_string(hide_password=False)

    def safe(self) -> str:
        """For logs and messages: the password masked."""
        return self.url.render_as_string(hide_password=True)

    def sqlalchemy_connect_args(self, *, pooled: bool = False) -> dict[str, Any]:
        """Keyword arguments for `create_async_engine(connect_args=...)`.

        `pooled`: behind a transaction pooler (PgBouncer in transaction mode) a prepared
        statement may be run on another server connection than the one it was prepared
        on. As SQLAlchemy documents for PgBouncer, asyncpg's statement cache is turned
        off and every prepared statement gets a unique name, so none can clash.
        """
        if self.asyncpg_dsn is None:
            return {}
        args: dict[str, Any] = {"dsn": self.asyncpg_dsn, **self.connect_args}
        if pooled:
            args["statement_cache_size"] = 0
            args["prepared_statement_cache_size"] = 0
            args["prepared_statement_name_func"] = _unique_statement_name
        return args


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def parse_database_url(raw: str, *, name: str = "DATABASE_URL") -> DatabaseUrl:
    text = raw.strip()
    if not text:
        raise DatabaseUrlError(f"{name} is empty")
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise DatabaseUrlError(
            f"{name} is not a database URL (expected postgresql://… or sqlite+aiosqlite:///…)"
        ) from None
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite":
        if driver not in ("", "aiosqlite"):
            raise DatabaseUrlError(f"{name}: use sqlite+aiosqlite:// (not sqlite+{driver}://)")
        return DatabaseUrl(url.set(drivername="sqlite+aiosqlite"))
    if backend not in ("postgres", "postgresql"):
        raise DatabaseUrlError(
            f"{name}: unsupported database '{backend}' (use postgresql://… or sqlite+aiosqlite:///…)"
        )
    notes: list[str] = []
    if driver not in ("", "asyncpg"):
        notes.append(f"{name}: driver '{driver}' replaced by asyncpg")
    return _postgres(url, name, notes)


def _postgres(url: URL, name: str, notes: list[str]) -> DatabaseUrl:
    if url.port is not None and not 0 < url.port < 65536:
        raise DatabaseUrlError(f"{name}: port {url.port} is out of range")
    kept: dict[str, str] = {}
    connect_args: dict[str, Any] = {}
    for key, value in url.query.items():
        if not isinstance(value, str):
            raise DatabaseUrlError(f"{name}: parameter '{key}' is given more than once")
        if key == "ssl":
            # SQLAlchemy's own spelling (`?ssl=require`), as our README used to advise
            key = "sslmode"
            value = {"true": "require", "false": "disable"}.get(value.lower(), value)
        if key == "sslmode" and value not in _SSLMODES:
            modes = ", ".join(sorted(_SSLMODES))
            raise DatabaseUrlError(f"{name}: sslmode '{value}' is not one of {modes}")
        if key in _ASYNCPG_PARAMS or key in _SERVER_SETTINGS:
            kept[key] = value
        elif key == "fallback_application_name":
            kept.setdefault("application_name", value)
        elif key == "connect_timeout":
            try:
                seconds = float(value)
            except ValueError:
                raise DatabaseUrlError(f"{name}: connect_timeout must be a number") from None
            if seconds > 0:  # libpq: 0 means wait forever
                connect_args["timeout"] = seconds
        else:
            reason = _DROPPED.get(key, "not a parameter asyncpg understands")
            notes.append(f"{name}: ignoring '{key}' ({reason})")
    if "application_name" in url.query and "fallback_application_name" in url.query:
        kept["application_name"] = str(url.query["application_name"])
    if kept.get("sslrootcert") == "system":
        connect_args["ssl"] = _system_trust(kept, name)
    asyncpg_url = url.set(drivername="postgresql", query=kept)
    return DatabaseUrl(
        url=url.set(drivername="postgresql+asyncpg", query={}),
        asyncpg_dsn=asyncpg_url.render_as_string(hide_password=False),
        connect_args=connect_args,
        notes=tuple(notes),
    )


def _system_trust(kept: dict[str, str], name: str) -> ssl.SSLContext:
    """libpq 16's `sslrootcert=system` (Neon documents it): the operating system's
    certificate authorities, and `verify-full` unless `verify-ca` is asked for."""
    del kept["sslrootcert"]
    mode = kept.pop("sslmode", "verify-full")
    if mode not in ("verify-ca", "verify-full"):
        raise DatabaseUrlError(f"{name}: sslrootcert=system needs sslmode=verify-full")
    context = ssl.create_default_context()
    context.check_hostname = mode == "verify-full"
    return context


def as_database_url(value: str | DatabaseUrl) -> DatabaseUrl:
    return value if isinstance(value, DatabaseUrl) else parse_database_url(value)
