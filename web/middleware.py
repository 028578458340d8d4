"""A pure ASGI middleware: request id in and out, and HTTP request counts."""

from __future__ import annotations

import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.metrics import HTTP_REQUESTS, series

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_KNOWN_PATHS = frozenset({"/graphql", "/health", "/ready", "/metrics"})


def request_id_of(scope: Scope) -> str:
    """The request's id, chosen once: the client's `X-Request-ID` when it is safe to
    log, else a new one; kept in the scope's state for whoever asks next."""
    state = scope.setdefault("state", {})
    chosen = state.get("request_id")
    if chosen is not None:
        return str(chosen)
    incoming = b""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            incoming = value  # the last one, as a dict of the headers would keep
    text = incoming.decode("latin-1")
    # a new id is 32 random hex digits (as uuid4().hex, without the UUID made for it)
    request_id = text if _SAFE_ID.match(text) else os.urandom(16).hex()
    state["request_id"] = request_id
    return request_id


def count_response(path: str, status: int) -> None:
    """One HTTP response in the request metrics (paths are a few, statuses bounded)."""
    series(HTTP_REQUESTS, path, str(status)).inc()


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        path = scope["path"] if scope["path"] in _KNOWN_PATHS else "other"

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
                count_response(path, message["status"])
            await send(message)

        await self.app(scope, receive, send_with_id)
