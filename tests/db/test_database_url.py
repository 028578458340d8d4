"""Database URLs as providers print them: the translation for asyncpg, and one-line
errors for the ones the server cannot use (core/database_url.py)."""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from core.config import ConfigError
from core.database_url import DatabaseUrlError, parse_database_url
from main import main
from tests.conftest import PG_URL, make_settings

Capture = pytest.CaptureFixture[str]
NEON = (
    "postgresql://alex:AbC1dEf2@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb"
    "?sslmode=require&channel_binding=require"
)


def test_neon_console_string_becomes_asyncpg_with_its_tls_mode() -> None:
    database = parse_database_url(NEON)
    assert database.url.drivername == "postgresql+asyncpg"
    assert database.url.query == {}
    assert database.url.password == "AbC1dEf2"
    assert database.asyncpg_dsn is not None
    dsn = make_url(database.asyncpg_dsn)
    assert dsn.drivername == "postgresql"
    assert dict(dsn.query) == {"sslmode": "require"}
    assert (dsn.host, dsn.database, dsn.username) == (
        "ep-cool-darkness-123456.us-east-2.aws.neon.tech",
        "neondb",
        "alex",
    )
    (note,) = database.notes
    assert "channel_binding" in note
    assert "AbC1dEf2" not in note


@pytest.mark.parametrize(
    "scheme", ["postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg"]
)
def test_every_postgres_scheme_is_driven_by_asyncpg(scheme: str) -> None:
    database = parse_database_url(f"{scheme}://u:p@db.example:6543/app")
    assert database.url.render_as_string(hide_password=False) == (
        "postgresql+asyncpg://u:p@db.example:6543/app"
    )
    assert database.dialect == "postgresql"


def test_libpq_parameters_are_kept_translated_or_dropped() -> None:
    database = parse_database_url(
        "postgres://u@h/db?ssl=require&connect_timeout=7&application_name=tc"
        "&options=-c%20statement_timeout%3D5s&target_session_attrs=read-write"
        "&keepalives=1&gssencmode=disable"
    )
    assert database.asyncpg_dsn is not None
    assert dict(make_url(database.asyncpg_dsn).query) == {
        "sslmode": "require",
        "application_name": "tc",
        "options": "-c statement_timeout=5s",
        "target_session_attrs": "read-write",
    }
    assert database.connect_args == {"timeout": 7.0}
    assert sorted(note.split("'")[1] for note in database.notes) == ["gssencmode", "keepalives"]


def test_percent_encoded_password_survives() -> None:
    database = parse_database_url("postgresql://u:p%40ss%2Fw0rd@h/db")
    assert database.url.password == "p@ss/w0rd"
    assert database.asyncpg_dsn is not None
    assert make_url(database.asyncpg_dsn).password == "p@ss/w0rd"


def test_system_trust_store_means_verify_full_with_the_system_authorities() -> None:
    database = parse_database_url("postgresql://u@h/db?sslrootcert=system")
    context = database.connect_args["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert database.asyncpg_dsn is not None
    assert dict(make_url(database.asyncpg_dsn).query) == {}


def test_pooled_connect_args_name_every_statement_uniquely() -> None:
    database = parse_database_url(NEON)
    direct = database.sqlalchemy_connect_args()
    assert "statement_cache_size" not in direct
    pooled = database.sqlalchemy_connect_args(pooled=True)
    assert pooled["statement_cache_size"] == 0
    assert pooled["prepared_statement_cache_size"] == 0
    names = {pooled["prepared_statement_name_func"]() for _ in range(100)}
    assert len(names) == 100


@pytest.mark.parametrize("url", ["sqlite:///./x.db", "sqlite+aiosqlite:///./x.db"])
def test_sqlite_urls(url: str) -> None:
    database = parse_database_url(url)
    assert database.render() == "sqlite+aiosqlite:///./x.db"
    assert database.is_sqlite
    assert database.sqlalchemy_connect_args() == {}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "DATABASE_URL is empty"),
        ("ep-x.neon.tech/neondb", "DATABASE_URL is not a database URL"),
        ("mysql://u:secret@h/db", "unsupported database 'mysql'"),
        ("sqlite+pysqlite:///x.db", "use sqlite+aiosqlite://"),
        ("postgresql://u:secret@h/db?sslmode=required", "sslmode 'required' is not one of"),
        ("postgresql://u:secret@h/db?connect_timeout=soon", "connect_timeout must be a number"),
        ("postgresql://u:secret@h/db?sslmode=require&sslrootcert=system", "needs sslmode=verify"),
        ("postgresql://u:secret@h/db?sslmode=require&sslmode=disable", "more than once"),
    ],
)
def test_unusable_urls_are_one_line_errors_without_secrets(url: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError) as raised:
        parse_database_url(url)
    text = str(raised.value)
    assert message in text
    assert "\n" not in text
    assert "secret" not in text


def test_settings_turn_a_bad_url_into_a_config_error() -> None:
    with pytest.raises(ConfigError, match="DATABASE_DIRECT_URL: unsupported database 'mysql'"):
        make_settings("postgresql://u@h/db", database_direct_url="mysql://u@h/db")


def test_direct_url_defaults_to_the_database_url() -> None:
    settings = make_settings(NEON)
    assert settings.direct_database.url == settings.database.url
    assert not settings.behind_pooler


def test_a_different_direct_url_means_a_pooler() -> None:
    settings = make_settings(
        "postgresql://u@pooler.example:6543/db", database_direct_url="postgresql://u@db.example/db"
    )
    assert settings.behind_pooler
    assert settings.direct_database.host == "db.example"


def test_neon_pooler_host_implies_its_direct_host() -> None:
    settings = make_settings(
        NEON.replace("ep-cool-darkness-123456.", "ep-cool-darkness-123456-pooler.")
    )
    assert settings.behind_pooler
    assert settings.direct_database.host == "ep-cool-darkness-123456.us-east-2.aws.neon.tech"
    assert settings.direct_database.url.password == "AbC1dEf2"
    assert any("DATABASE_DIRECT_URL unset" in note for note in settings.direct_database.notes)


def test_several_workers_need_postgres() -> None:
    with pytest.raises(ConfigError, match="WORKERS > 1 needs PostgreSQL"):
        make_settings("sqlite+aiosqlite:///./x.db", workers=2)
    assert make_settings(NEON, workers=3).workers == 3


@pytest.mark.parametrize("command", ["migrate", "serve"])
def test_the_cli_answers_a_bad_url_with_one_line_and_exit_2(
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: Capture,
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("DATABASE_URL", "mysql://root:secret@db/app")
    assert main([command]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == (
        "",
        "taskchat: DATABASE_URL: unsupported database 'mysql'"
        " (use postgresql://… or sqlite+aiosqlite:///…)\n",
    )


@pytest.mark.parametrize("workers", ["WORKERS", "WEB_CONCURRENCY"])
def test_the_cli_refuses_several_workers_on_sqlite(
    workers: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: Capture,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv(workers, "2")
    assert main(["serve"]) == 2
    assert capsys.readouterr().err == (
        "taskchat: WORKERS > 1 needs PostgreSQL: on SQLite, turn locks and fan-out are in-process\n"
    )


def test_the_cli_answers_an_unreachable_database_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Capture
) -> None:
    missing = make_url(PG_URL).set(database=f"taskchat_missing_{uuid.uuid4().hex}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", missing.render_as_string(hide_password=False))
    assert main(["migrate"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("taskchat: cannot use the database postgresql+asyncpg://")
    assert err.endswith(f'database "{missing.database}" does not exist\n')
    assert err.count("\n") == 1
