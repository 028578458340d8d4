"""The request deadline: a request that has not started its response by then is
cancelled and answered 503; a response under way (a stream) runs on past it."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from web.timeouts import RequestTimeoutMiddleware


async def _call(app: Any) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await RequestTimeoutMiddleware(app, seconds=0.05)({"type": "http"}, receive, send)
    return sent


async def test_a_request_past_its_deadline_is_cancelled_and_answered_503() -> None:
    cancelled = asyncio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    sent = await _call(slow)
    assert cancelled.is_set()
    assert sent[0]["status"] == 503
    assert b"SERVICE_UNAVAILABLE" in sent[1]["body"]


async def test_a_started_response_runs_on_past_the_deadline() -> None:
    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.15)
        await send({"type": "http.response.body", "body": b"late", "more_body": False})

    sent = await _call(streaming)
    assert [message.get("status") for message in sent] == [200, None]
    assert sent[1]["body"] == b"late"


async def test_a_quick_request_is_untouched() -> None:
    async def quick(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent = await _call(quick)
    assert sent[0]["status"] == 204
    assert len(sent) == 2
    await asyncio.sleep(0.1)  # no deadline left behind to fire later
