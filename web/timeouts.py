"""Every HTTP request ends within a time limit (`REQUEST_TIMEOUT_SECONDS`).

A request still running at its limit is cancelled (its unit of work rolls back) and
answered 503 with a coded error, if nothing was sent yet. Streams are left alone once they
have started (a multipart subscription), and WebSockets have limits of their own.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schema.error_codes import error_entry


class RequestTimeoutMiddleware:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # a deadline on this task, not a task of its own per request: cheaper, and the
        # request's work is cancelled where it runs
        deadline = asyncio.timeout(self.seconds)
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                deadline.reschedule(None)  # a response under way ends by its own rules
            await send(message)

        try:
            async with deadline:
                await self.app(scope, receive, tracking_send)
            return
        except TimeoutError:
            if started:
                raise
        headers, body = timeout_answer(self.seconds)
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def timeout_answer(seconds: float) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The 503 of a request cut off at its deadline: its headers and body."""
    body = orjson.dumps(
        {
            "errors": [
                error_entry(
                    f"the request took longer than {round(seconds)} s",
                    "SERVICE_UNAVAILABLE",
                    retryAfter=1,
                )
            ]
        }
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"retry-after", b"1"),
        (b"content-length", str(len(body)).encode()),
    ]
    return headers, body
