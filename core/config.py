"""One typed settings object, read from the environment (or `.env`) once at start-up."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_FILE = Path(".taskchat-dev-secret")
MIN_SECRET_BYTES = 32


class ConfigError(RuntimeError):
    """The configuration cannot be served (e.g. production without a real JWT key)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./taskchat.db"
    environment: Literal["development", "production", "test"] = "development"

    jwt_secret: str | None = None
    jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway_seconds: int = 30

    agent_provider: Literal["groq", "offline"] | None = None
    groq_api_key: str | None = None
    groq_model: str = "llama-3.3-70b-versatile"
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

    max_query_depth: int = 12
    max_query_aliases: int = 30
    max_query_tokens: int = 2000
    max_query_cost: int = 10_000
    ws_max_subscriptions_per_connection: int = 20
    ws_max_connections_per_user: int = 20
    ws_queue_size: int = 256
    db_pool_size: int = 10
    db_pool_pre_ping: bool = True

    #: OpenTelemetry tracing (FastAPI, SQLAlchemy, asyncpg spans over OTLP/HTTP)
    otel_enabled: bool = False
    otel_service_name: str = "taskchat"

    @model_validator(mode="after")
    def _check_keys(self) -> Settings:
        if self.jwt_secret is not None and len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if self.is_production and not (self.jwt_secret or self.jwks_url):
            raise ConfigError("production requires JWT_SECRET or JWKS_URL")
        return self

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def allowed_origins(self) -> list[str]:
        if self.cors_origins is None:
            return [] if self.is_production else ["*"]
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

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
