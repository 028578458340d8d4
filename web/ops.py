"""Operations endpoints: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from core.metrics import DB_POOL_CHECKED_OUT, DB_POOL_SIZE


def ops_router(engine: AsyncEngine, metrics_token: str | None = None) -> APIRouter:
    """`metrics_token` set: /metrics answers only `Authorization: Bearer <metrics_token>`."""
    router = APIRouter()

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready")
    async def ready(response: Response) -> dict[str, str]:
        try:
            async with asyncio.timeout(2):
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception:
            response.status_code = 503
            return {"status": "unavailable", "database": "unreachable"}
        return {"status": "ok", "database": "ok"}

    @router.get("/metrics")
    async def metrics(request: Request) -> Response:
        if metrics_token is not None and not _bearer_matches(
            request.headers.get("authorization"), metrics_token
        ):
            return Response(
                "a metrics token is required: send 'Authorization: Bearer <METRICS_TOKEN>'\n",
                status_code=401,
                media_type="text/plain",
                headers={"WWW-Authenticate": "Bearer"},
            )
        pool = engine.sync_engine.pool
        if isinstance(pool, QueuePool):
            DB_POOL_CHECKED_OUT.set(pool.checkedout())
            DB_POOL_SIZE.set(pool.size())
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def _bearer_matches(header: str | None, token: str) -> bool:
    scheme, _, value = (header or "").partition(" ")
    given = value.strip().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given, token.encode())
