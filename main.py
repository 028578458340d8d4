"""taskchat: the app factory and the command line (`taskchat COMMAND` once installed,
or `python main.py COMMAND`).

taskchat serve      apply migrations once, then serve (WORKERS processes)
taskchat migrate    apply migrations
taskchat token SUBJECT [--ttl 1h]
taskchat schema     print the SDL
taskchat check      database reachable and migrated; with a key, Groq and its model
taskchat archive --inactive-days N | purge --deleted-days N
taskchat export-user SUBJECT | erase-user SUBJECT
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.exc import DBAPIError

from agent.providers.factory import build_provider
from agent.turn import Assistant
from core.auth import TokenVerifier, create_token, parse_ttl
from core.config import ConfigError, Settings
from core.cursors import CursorCodec
from core.database_url import DatabaseUrl
from core.gc_tuning import tune_garbage_collector
from core.logging import configure_logging, get_logger
from db.engine import close_idle_connections, create_engine, create_session_factory
from db.locks import build_turn_locks
from live.broker import build_broker
from resolvers.resources import AppResources
from schema.schema import build_schema, compiled_operations, print_sdl
from services import lifecycle
from services.replies import build_reply_journal
from web.app import TaskchatApp
from web.compiled import CompiledOperationsFront
from web.graphiql import STATIC_DIR, STATIC_PATH
from web.graphql import TaskchatGraphQLRouter, UnauthenticatedRequest, unauthenticated_body
from web.middleware import RequestIdMiddleware
from web.ops import ops_router
from web.persisted import PersistedDocuments, load_manifest
from web.security import SecurityHeadersMiddleware, cors_options
from web.timeouts import RequestTimeoutMiddleware
from web.tracing import exporting_provider, start_tracing

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

ROOT = Path(__file__).resolve().parent
log = get_logger("taskchat")


def _cursor_secret(settings: Settings) -> str:
    """Shared by every instance: the JWT secret, or (JWKS only) the database URL."""
    if settings.jwt_secret or not settings.jwks_url:
        return settings.signing_secret
    return hashlib.sha256(settings.database_url.encode()).hexdigest()


def create_app(
    settings: Settings | None = None,
    *,
    demo_token: str | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """`demo_token`: shown in GraphiQL's headers pane (development only);
    `tracer_provider`: where spans go when `OTEL_ENABLED` (default: OTLP/HTTP)."""
    settings = settings or Settings()
    configure_logging(json=settings.is_production, level=settings.log_level)
    for note in dict.fromkeys((*settings.database.notes, *settings.direct_database.notes)):
        log.info("database url", note=note)
    # An instance opens at most 4 * DB_POOL_SIZE + max(2, DB_POOL_SIZE // 2) + 1
    # connections (README, DB_POOL_SIZE): past that, work waits for a pooled connection
    # rather than the server refusing a new one (tests/db/test_connection_budget.py).
    size = settings.db_pool_size
    engine = create_engine(
        settings.database,
        pool_size=size,
        max_overflow=size,
        pre_ping=settings.db_pool_pre_ping,
        # on SQLite a write may wait behind a whole turn (model included)
        sqlite_busy_seconds=max(30.0, settings.agent_timeout_seconds * 2 + 5),
        pooled=settings.behind_pooler,
    )
    # Turn locks hold a connection for a whole turn: they get a pool of their own, or
    # concurrent turns could hold every connection while waiting for one to work with.
    # They are on the direct URL, as is the LISTEN connection: a transaction pooler
    # carries neither a session nor what it listens to.
    lock_engine = create_engine(
        settings.direct_database,
        pool_size=size,
        max_overflow=size,
        pre_ping=settings.db_pool_pre_ping,
        metric_pool="locks",
    )
    # the reply journal writes streams while turns hold their connections: its own pool
    journal_engine = (
        engine
        if settings.database.is_sqlite
        else create_engine(
            settings.database,
            pool_size=2,
            max_overflow=max(0, size // 2 - 2),
            pre_ping=settings.db_pool_pre_ping,
            pooled=settings.behind_pooler,
        )
    )
    broker = build_broker(engine, settings.direct_database)
    provider = build_provider(settings)
    session_factory = create_session_factory(engine)
    resources = AppResources(
        settings=settings,
        session_factory=session_factory,
        verifier=TokenVerifier(settings),
        cursors=CursorCodec(_cursor_secret(settings)),
        broker=broker,
        assistant=Assistant(
            settings,
            provider,
            build_turn_locks(lock_engine, wait_seconds=settings.agent_timeout_seconds * 4),
            broker,
            build_reply_journal(journal_engine, broker),
        ),
    )

    stop_tracing: Callable[[], None] | None = None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await broker.start()
        tune_garbage_collector(settings.gc_gen0_threshold)
        trimming = asyncio.create_task(close_idle_connections(engine, lock_engine, journal_engine))
        try:
            yield
        finally:
            trimming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await trimming
            if stop_tracing is not None:
                stop_tracing()
            await broker.stop()
            await provider.aclose()
            await engine.dispose()
            await lock_engine.dispose()
            if journal_engine is not engine:
                await journal_engine.dispose()

    app = TaskchatApp(
        title="taskchat",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        max_body_size=settings.max_request_bytes,
    )
    manifest = load_manifest(settings.trusted_documents) if settings.trusted_documents else None
    schema = build_schema(settings)
    graphql = TaskchatGraphQLRouter(
        schema,
        resources,
        persisted=PersistedDocuments(apq_capacity=settings.apq_cache_size, manifest=manifest),
        demo_token=None if settings.is_production else demo_token,
        path="/graphql",
        graphql_ide=None if settings.is_production else "graphiql",
        keep_alive=True,
        keep_alive_interval=15,
        max_subscriptions_per_connection=settings.ws_max_subscriptions_per_connection,
        connection_init_wait_timeout=timedelta(seconds=10),
        allowed_origins=settings.allowed_origins,
    )
    app.include_router(graphql)
    app.include_router(ops_router(engine, settings.metrics_token))
    if not settings.is_production:
        # GraphiQL's page and assets, from this server: no CDN
        app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="static")
    # (the last added runs first) the deadline's 503 gets CORS and security headers too:
    # a browser on another origin can read it
    app.add_middleware(RequestTimeoutMiddleware, seconds=settings.request_timeout)
    if settings.allowed_origins:
        app.add_middleware(CORSMiddleware, **cors_options(settings.allowed_origins))
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)
    if settings.compiled_operations:
        front: dict[str, Any] = dict(
            path="/graphql",
            operations=compiled_operations(schema._schema, settings),
            resources=resources,
            persisted=graphql.persisted,
            max_body=settings.max_request_bytes,
            request_timeout=settings.request_timeout,
            allowed_origins=settings.allowed_origins,
        )
        if settings.otel_enabled:
            # inside the instrumentation, which must see every request: the first of
            # our layers (it adds what the others would to what it answers)
            app.add_middleware(CompiledOperationsFront, **front)
        else:
            app.put_in_front(lambda stack: CompiledOperationsFront(stack, **front))
    if settings.otel_enabled:
        stop_tracing = start_tracing(
            app,
            [engine, lock_engine],
            tracer_provider or exporting_provider(settings),
            owns_provider=tracer_provider is None,
        )

    @app.exception_handler(UnauthenticatedRequest)
    async def _unauthenticated(_: Request, error: UnauthenticatedRequest) -> Response:
        return Response(
            unauthenticated_body(error.message),
            status_code=401,
            media_type="application/json",
            headers={"WWW-Authenticate": "Bearer"},
        )

    app.state.resources = resources
    app.state.engine = engine
    # a turn's statements run on a connection of the locks' pool (db/locks.py)
    app.state.lock_engine = lock_engine
    return app


def _alembic_config(database_url: str | DatabaseUrl) -> AlembicConfig:
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.attributes["database_url"] = database_url
    return config


def run_migrations(database_url: str | DatabaseUrl, revision: str = "head") -> None:
    """Upgrade; pass the direct URL (a transaction pooler may carry DDL, but not the
    upgrade's lock reliably and Neon advises against it)."""
    from alembic import command

    command.upgrade(_alembic_config(database_url), revision)


async def _check(settings: Settings) -> bool:
    """One line per check on stdout; true when every check passed."""
    import groq
    from alembic.script import ScriptDirectory

    from agent.providers.groq import GroqProvider
    from db.health import current_revision

    results: list[tuple[str, bool, str]] = []
    head = ScriptDirectory.from_config(_alembic_config(settings.direct_database)).get_current_head()
    try:
        engine = create_engine(settings.direct_database)
        try:
            async with asyncio.timeout(10):
                revision = await current_revision(engine)
        finally:
            await engine.dispose()
    except Exception as error:
        results.append(("database", False, f"unreachable ({type(error).__name__})"))
    else:
        results.append(("database", True, "reachable"))
        if revision == head:
            results.append(("migrations", True, f"at {head}"))
        else:
            results.append(
                ("migrations", False, f"at {revision or 'none'}, expected {head}: run migrate")
            )

    if not settings.groq_api_key:
        results.append(("groq", True, "skipped (no GROQ_API_KEY; the offline agent answers)"))
    else:
        provider = GroqProvider(
            settings.groq_api_key,
            model=settings.groq_model,
            base_url=settings.groq_base_url,
            timeout_seconds=min(settings.agent_timeout_seconds, 10),
        )
        try:
            models = await provider.list_models()
        except groq.APIStatusError as error:
            results.append(("groq", False, f"answered HTTP {error.status_code}"))
        except groq.APIError as error:
            results.append(("groq", False, f"unreachable ({type(error).__name__})"))
        else:
            results.append(("groq", True, f"answers ({len(models)} models listed)"))
            for model in [settings.groq_model, *settings.groq_fallbacks]:
                if model in models:
                    results.append(("model", True, f"{model} is listed"))
                else:
                    results.append(
                        ("model", False, f"{model} is not listed: set GROQ_MODEL to one that is")
                    )
        finally:
            await provider.aclose()

    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
    return all(ok for _, ok, _ in results)


def _serve(settings: Settings) -> None:
    import uvicorn

    run_migrations(settings.direct_database)
    address = f"http://{settings.host}:{settings.port}/graphql"
    token: str | None = None
    if settings.is_production or settings.jwks_url:
        # with a JWKS the issuer signs tokens; there is no key here to sign a demo one
        print(f"taskchat serving GraphQL at {address}", flush=True)
    else:
        token = create_token(settings, "demo", timedelta(days=7))
        print(
            f"taskchat ({settings.environment}, {settings.resolved_agent_provider} agent)\n"
            f"  GraphiQL:   {address}\n"
            f"  demo token: {token}\n"
            '  header:     {"Authorization": "Bearer <demo token>"}',
            flush=True,
        )
    options = uvicorn_options(settings)
    if settings.workers > 1:
        # each worker builds its own app from the same environment; the migrations
        # above ran once, before any of them started
        uvicorn.run("main:create_app", factory=True, **options)
    else:
        uvicorn.run(create_app(settings, demo_token=token), **options)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "loop": "uvloop",
        "http": "httptools",
        "ws": "websockets-sansio",
        "log_level": "warning",
        # X-Forwarded-For/-Proto are believed from these proxies only
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        # keepalive: a peer that stops answering pings (or stops reading) is dropped
        "ws_ping_interval": 20,
        "ws_ping_timeout": 20,
        # a larger frame closes the socket (1009), as a larger HTTP body answers 413
        "ws_max_size": settings.max_request_bytes,
    }


LIFECYCLE_COMMANDS = frozenset({"archive", "purge", "export-user", "erase-user"})


async def run_lifecycle(
    settings: Settings, args: argparse.Namespace, out: TextIO | None = None
) -> int:
    """One data-lifecycle command: what it did on `out` (stdout), or an export's JSON
    there and its counts on stderr."""
    out = out or sys.stdout
    engine = create_engine(settings.database_url, pool_size=2)
    sessions = create_session_factory(engine)
    broker = build_broker(engine, settings.database_url)
    try:
        if args.command == "archive":
            days = timedelta(days=args.inactive_days)
            print(await lifecycle.archive_inactive(sessions, broker, days), file=out)
        elif args.command == "purge":
            days = timedelta(days=args.deleted_days)
            print(await lifecycle.purge_deleted(sessions, days), file=out)
        elif args.command == "erase-user":
            print(await lifecycle.erase_user(sessions, broker, args.subject), file=out)
        elif args.command == "export-user":
            export = await lifecycle.export_user(sessions, args.subject)
            if export is None:
                print(f"taskchat: no user {args.subject!r}", file=sys.stderr)
                return 1
            print(orjson.dumps(export, option=orjson.OPT_INDENT_2).decode(), file=out)
            print(lifecycle.export_summary(export), file=sys.stderr)
    finally:
        out.flush()
        await engine.dispose()
    return 0


def _days(value: str) -> int:
    days = int(value)
    if days < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return days


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskchat", description="taskchat GraphQL backend")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="apply migrations, then serve")
    commands.add_parser("migrate", help="apply database migrations")
    token = commands.add_parser("token", help="sign a development token with JWT_SECRET")
    token.add_argument("subject")
    token.add_argument("--ttl", default="1h", help="lifetime: 90s, 15m, 1h, 7d (default 1h)")
    commands.add_parser("schema", help="print the GraphQL SDL")
    commands.add_parser("check", help="check the database and the model provider")
    archive = commands.add_parser(
        "archive", help="archive ACTIVE conversations with no activity for N days"
    )
    archive.add_argument("--inactive-days", type=_days, required=True, metavar="N")
    purge = commands.add_parser("purge", help="hard-delete rows soft-deleted more than N days ago")
    purge.add_argument("--deleted-days", type=_days, required=True, metavar="N")
    export = commands.add_parser("export-user", help="print one user's data as JSON")
    export.add_argument("subject")
    erase = commands.add_parser("erase-user", help="delete one user and all their data")
    erase.add_argument("subject")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    database = "the database"
    try:
        if args.command == "schema":
            sys.stdout.write(print_sdl())
            return 0
        settings = Settings()
        database = f"the database {settings.direct_database.safe()}"
        if args.command in LIFECYCLE_COMMANDS:
            return asyncio.run(run_lifecycle(settings, args))
        if args.command == "serve":
            _serve(settings)
        elif args.command == "migrate":
            run_migrations(settings.direct_database)
            print("migrations applied", flush=True)
        elif args.command == "check":
            return 0 if asyncio.run(_check(settings)) else 1
        elif args.command == "token":
            if settings.jwks_url and not settings.jwt_secret:
                raise ConfigError("JWKS_URL is set: tokens come from its issuer, not from here")
            print(create_token(settings, args.subject, parse_ttl(args.ttl)))
    except (ConfigError, ValueError) as error:
        print(f"taskchat: {error}", file=sys.stderr)
        return 2
    except (OSError, DBAPIError) as error:
        # unreachable, refused, no such database, a certificate that does not verify
        print(f"taskchat: cannot use {database}: {_one_line(error)}", file=sys.stderr)
        return 1
    return 0


def _one_line(error: BaseException) -> str:
    """What the driver answered, without SQLAlchemy's SQL and background link."""
    cause = getattr(error, "orig", None) or error
    reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return reason.split(">: ", 1)[-1]  # "<class 'asyncpg.exceptions.X'>: message"


if __name__ == "__main__":
    sys.exit(main())
