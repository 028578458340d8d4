"""One typed settings object, read from the environment (or `.env`) once at start-up."""

from __future__ import annotations

import secrets
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from core.database_url import DatabaseUrl, DatabaseUrlError, parse_database_url

DEV_SECRET_FILE = Path(".taskchat-dev-secret")
MIN_SECRET_BYTES = 32
#: The Groq model used unless GROQ_MODEL says otherwise: one Groq serves today for tool use
#: (its deprecations page names it as the replacement of the Llama models it switched off).
DEFAULT_GROQ_MODEL = "openai/gpt-oss-120b"


class ConfigError(RuntimeError):
    """The configuration cannot be served (e.g. production without a real JWT key)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./taskchat.db"
    #: an unpooled URL for what a transaction pooler cannot carry (migrations, LISTEN,
    #: the turn locks); unset: DATABASE_URL (or, for a Neon `-pooler` host, that host
    #: without `-pooler`)
    database_direct_url: str | None = None
    environment: Literal["development", "production", "test"] = "development"

    jwt_secret: str | None = None
    jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway_seconds: int = 30

    agent_provider: Literal["groq", "offline"] | None = None
    groq_api_key: str | None = None
    groq_model: str = DEFAULT_GROQ_MODEL
    #: comma-separated models tried in order when GROQ_MODEL is switched off or unknown
    groq_fallback_models: str | None = None
    groq_base_url: str | None = None
    agent_timeout_seconds: float = Field(default=30, gt=0)
    agent_max_steps: int = Field(default=5, ge=1, le=20)
    history_limit: int = Field(default=20, ge=1, le=200)
    max_message_chars: int = Field(default=5000, ge=1)
    rate_limit_per_minute: int = Field(default=20, ge=1)

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: origins whose pages may call the API (HTTP CORS and WebSocket handshakes),
    #: comma-separated; unset: any origin in development, none in production
    cors_origins: str | None = None

    host: str = "127.0.0.1"
    port: int = 8000
    #: server processes `serve` starts (uvicorn's WEB_CONCURRENCY is read too)
    workers: int = Field(
        default=1, ge=1, validation_alias=AliasChoices("workers", "web_concurrency")
    )
    #: proxies whose X-Forwarded-For/-Proto are believed: comma-separated IPs or
    #: networks, or `*`
    forwarded_allow_ips: str = "127.0.0.1"

    max_query_depth: int = 12
    max_query_aliases: int = 30
    max_query_tokens: int = 2000
    max_query_cost: int = 10_000
    #: list and history queries planned once per document and answered with one SQL
    #: statement per root field (off: every operation runs through normal execution)
    compiled_operations: bool = True
    #: the cyclic garbage collector's gen-0 threshold once serving (Python's default: 700)
    gc_gen0_threshold: int = Field(default=50_000, ge=100)
    #: an HTTP request still running after this is cancelled and answered 503 (unset:
    #: the agent timeout plus 15 s, so a turn always ends by its own deadline first)
    request_timeout_seconds: float | None = Field(default=None, gt=0)
    #: a larger HTTP request body is refused with 413 before it is read whole
    max_request_bytes: int = Field(default=256 * 1024, ge=1024)
    ws_max_subscriptions_per_connection: int = 20
    ws_max_connections_per_user: int = 20
    ws_queue_size: int = 256
    #: connections kept per pool; a burst opens as many again, kept while in use and closed
    #: after 60 s unused (db/engine.py `TimedQueuePool`). An instance opens at most
    #: 4 * this + max(2, this // 2) + 1 (main.py)
    db_pool_size: int = Field(default=10, ge=1)
    #: check each pooled connection with a round trip before use; off by default: a read
    #: on a dropped connection is retried once on a fresh one instead
    db_pool_pre_ping: bool = False

    #: set: /metrics answers only `Authorization: Bearer <metrics_token>`
    metrics_token: str | None = None
    #: documents remembered per instance for automatic persisted queries (0: APQ off)
    apq_cache_size: int = Field(default=1000, ge=0)
    #: a manifest of trusted documents (Relay, GraphQL Codegen or Apollo format): set,
    #: only its operations run
    trusted_documents: Path | None = None
    #: OpenTelemetry tracing (FastAPI, SQLAlchemy, asyncpg spans over OTLP/HTTP)
    otel_enabled: bool = False
    otel_service_name: str = "taskchat"

    @model_validator(mode="after")
    def _check_keys(self) -> Settings:
        if self.jwt_secret is not None and len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if self.is_production and not (self.jwt_secret or self.jwks_url):
            raise ConfigError("production requires JWT_SECRET or JWKS_URL")
        try:
            database, direct = self.database, self.direct_database
        except DatabaseUrlError as error:
            raise ConfigError(str(error)) from None
        if database.is_sqlite != direct.is_sqlite:
            raise ConfigError("DATABASE_DIRECT_URL must point at the same database as DATABASE_URL")
        if self.workers > 1 and database.is_sqlite:
            raise ConfigError(
                "WORKERS > 1 needs PostgreSQL: on SQLite, turn locks and fan-out are in-process"
            )
        return self

    @cached_property
    def database(self) -> DatabaseUrl:
        """DATABASE_URL, normalised (core/database_url.py): what queries go through."""
        return parse_database_url(self.database_url)

    @cached_property
    def direct_database(self) -> DatabaseUrl:
        """The unpooled URL: migrations, the LISTEN connection, the turn locks."""
        if self.database_direct_url:
            return parse_database_url(self.database_direct_url, name="DATABASE_DIRECT_URL")
        database = self.database
        host = database.host or ""
        if "-pooler." in host:
            # Neon: the pooled endpoint is the direct one with `-pooler` in its host
            raw = make_url(self.database_url.strip()).set(host=host.replace("-pooler.", ".", 1))
            direct = parse_database_url(raw.render_as_string(hide_password=False))
            note = f"DATABASE_DIRECT_URL unset: using {raw.host} for migrations, LISTEN, locks"
            return replace(direct, notes=(*direct.notes, note))
        return database

    @property
    def behind_pooler(self) -> bool:
        """DATABASE_URL goes through a transaction pooler (it differs from the direct one):
        queries then use no named statement twice (see DatabaseUrl.sqlalchemy_connect_args)."""
        return self.database.url != self.direct_database.url

    @property
    def request_timeout(self) -> float:
        if self.request_timeout_seconds is not None:
            return self.request_timeout_seconds
        return self.agent_timeout_seconds + 15

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def allowed_origins(self) -> list[str]:
        if self.cors_origins is None:
            return [] if self.is_production else ["*"]
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def groq_fallbacks(self) -> list[str]:
        models = (self.groq_fallback_models or "").split(",")
        return [model.strip() for model in models if model.strip()]

    @property
    def resolved_agent_provider(self) -> Literal["groq", "offline"]:
        if self.agent_provider is not None:
            return self.agent_provider
        return "groq" if self.groq_api_key else "offline"

    @cached_property
    def signing_secret(self) -> str:
        """The HS256 secret; in development one is generated once and kept in a local file
        so that tokens survive a restart."""
        if self.jwt_secret:
            return self.jwt_secret
        if self.is_production:
            raise ConfigError("production requires JWT_SECRET")
        if DEV_SECRET_FILE.exists():
            return DEV_SECRET_FILE.read_text().strip()
        secret = secrets.token_urlsafe(48)
        DEV_SECRET_FILE.write_text(secret)
        DEV_SECRET_FILE.chmod(0o600)
        return secret
