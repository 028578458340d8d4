"""OpenTelemetry tracing, off unless `OTEL_ENABLED`: a span for every HTTP request
(FastAPI), every SQL statement (SQLAlchemy) and every asyncpg call, through the
maintained instrumentations. Spans go over OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT`
(the exporter reads the standard `OTEL_EXPORTER_OTLP_*` variables itself).

The instrumentations patch libraries for the whole process: one app per process
traces, and `stop` undoes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import FastAPI
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy.ext.asyncio import AsyncEngine

from core.config import Settings

#: probes and scrapes would drown the traces that matter
UNTRACED_PATHS = "/health,/ready,/metrics"


def exporting_provider(settings: Settings) -> TracerProvider:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.otel_service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def start_tracing(
    app: FastAPI,
    engines: Sequence[AsyncEngine],
    provider: TracerProvider,
    *,
    owns_provider: bool,
) -> Callable[[], None]:
    """Instruments the app, the engines and asyncpg; returns what undoes it (and, when
    the provider is ours, flushes and closes it)."""
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls=UNTRACED_PATHS)
    sqlalchemy = SQLAlchemyInstrumentor()
    sqlalchemy.instrument(
        engines=[engine.sync_engine for engine in engines],
        tracer_provider=provider,
        # it declares "sqlalchemy < 2.1" while its engine events work on 2.1 (our tests
        # check the spans); without this it would silently instrument nothing
        skip_dep_check=True,
    )
    asyncpg = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    uses_asyncpg = any(engine.dialect.driver == "asyncpg" for engine in engines)
    if uses_asyncpg:
        asyncpg.instrument(tracer_provider=provider)

    def stop() -> None:
        if uses_asyncpg:
            asyncpg.uninstrument()
        sqlalchemy.uninstrument()
        FastAPIInstrumentor.uninstrument_app(app)
        if owns_provider:
            provider.shutdown()

    return stop
