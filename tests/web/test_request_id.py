"""The request id: a safe one the client sent is kept (the last, if it sent several);
otherwise a new one, 32 random hex digits, different for each request."""

from __future__ import annotations

import re

import pytest
from starlette.types import Message, Receive, Scope, Send

from web.middleware import RequestIdMiddleware


async def _request_id(headers: list[tuple[bytes, bytes]]) -> tuple[str, str]:
    """(the id the app saw, the id the response carries)"""
    seen: dict[str, str] = {}
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["id"] = scope["state"]["request_id"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/graphql", "headers": headers}
    await RequestIdMiddleware(app)(scope, receive, send)
    returned = dict(sent[0]["headers"])[b"x-request-id"].decode()
    return seen["id"], returned


async def test_a_safe_id_is_kept() -> None:
    assert await _request_id([(b"x-request-id", b"req-1.a_B")]) == ("req-1.a_B", "req-1.a_B")


async def test_of_several_the_last_is_kept() -> None:
    headers = [(b"x-request-id", b"first"), (b"accept", b"*/*"), (b"x-request-id", b"last")]
    assert await _request_id(headers) == ("last", "last")


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"x-request-id", b"")],
        [(b"x-request-id", b"no spaces")],
        [(b"x-request-id", b"x" * 65)],
    ],
)
async def test_otherwise_a_new_random_one(headers: list[tuple[bytes, bytes]]) -> None:
    first, returned = await _request_id(headers)
    assert first == returned
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert (await _request_id(headers))[0] != first
