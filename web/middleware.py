"""A pure ASGI middleware: request id in and out, and HTTP request counts."""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.metrics import HTTP_REQUESTS

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_KNOWN_PATHS = frozenset({"/graphql", "/health", "/ready", "/metrics"})


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        path = scope["path"] if scope["path"] in _KNOWN_PATHS else "other"

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
                HTTP_REQUESTS.labels(path, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, send_with_id)
