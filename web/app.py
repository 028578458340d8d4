"""The ASGI application: FastAPI, with room for one layer in front of its whole
middleware stack (the compiled path, `web/compiled.py`), which answers what it can
before Starlette's and our own layers run and hands them everything else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send


class TaskchatApp(FastAPI):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._front: ASGIApp | None = None

    def put_in_front(self, make: Callable[[ASGIApp], ASGIApp]) -> None:
        """`make(stack)` answers requests first, passing the rest on to `stack`."""
        self._front = make(self._stack)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._front is None:
            await super().__call__(scope, receive, send)
        else:
            await self._front(scope, receive, send)

    async def _stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)
