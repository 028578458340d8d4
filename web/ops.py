"""Operations endpoints: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from core.metrics import DB_POOL_CHECKED_OUT, DB_POOL_SIZE


def ops_router(engine: AsyncEngine) -> APIRouter:
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
    async def metrics(_: Request) -> Response:
        pool = engine.sync_engine.pool
        if isinstance(pool, QueuePool):
            DB_POOL_CHECKED_OUT.set(pool.checkedout())
            DB_POOL_SIZE.set(pool.size())
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
