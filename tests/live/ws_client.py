"""A tiny graphql-transport-ws client for tests, over the `websockets` library.

It speaks the protocol the way `graphql-ws` does: `connection_init` (with an optional
payload), then `subscribe` / `next` / `error` / `complete`, answering the server's pings.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

PROTOCOL = Subprotocol("graphql-transport-ws")

Message = dict[str, Any]


class SocketClosed(Exception):
    """The server closed the socket while a message was awaited."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"socket closed: {code} {reason!r}")
        self.code = code
        self.reason = reason


class GraphQLWebSocket:
    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.acknowledged = False

    @property
    def close_code(self) -> int | None:
        """The close code the server sent, once the socket is closed."""
        return self.websocket.close_code

    async def init(self, payload: Mapping[str, Any] | None) -> None:
        """Send `connection_init` without waiting for the answer."""
        init: Message = {"type": "connection_init"}
        if payload is not None:
            init["payload"] = dict(payload)
        await self._send(init)

    async def handshake(self, payload: Mapping[str, Any] | None, timeout: float = 5.0) -> None:
        """`connection_init`, then wait for `connection_ack` or a close."""
        await self.init(payload)
        try:
            message = await self.next_message(timeout)
        except SocketClosed:
            return
        if message.get("type") != "connection_ack":
            raise AssertionError(f"expected connection_ack, got {message}")
        self.acknowledged = True

    async def subscribe(
        self, id: str, query: str, variables: Mapping[str, Any] | None = None
    ) -> None:
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = dict(variables)
        await self._send({"id": id, "type": "subscribe", "payload": payload})

    async def next_message(self, timeout: float = 5.0) -> Message:
        """The next protocol message other than ping/pong (pings are answered).

        Raises `SocketClosed` when the server closes, `TimeoutError` when nothing came."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    raw = await self.websocket.recv()
                except ConnectionClosed:
                    raise SocketClosed(self.close_code, self.websocket.close_reason or "") from None
                message: Message = json.loads(raw)
                if message.get("type") == "ping":
                    await self._send({"type": "pong"})
                    continue
                if message.get("type") == "pong":
                    continue
                return message

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        """Read until the server closes the socket; returns its close code."""
        try:
            while True:
                await self.next_message(timeout)
        except SocketClosed as closed:
            return closed.code

    async def complete(self, id: str) -> None:
        await self._send({"id": id, "type": "complete"})

    async def close(self) -> None:
        await self.websocket.close()

    async def _send(self, message: Message) -> None:
        try:
            await self.websocket.send(json.dumps(message))
        except ConnectionClosed:
            raise SocketClosed(self.close_code, self.websocket.close_reason or "") from None


@asynccontextmanager
async def connect(
    url: str,
    payload: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    handshake: bool = True,
) -> AsyncIterator[GraphQLWebSocket]:
    """An initialised socket; `acknowledged` is false when the server closed it instead.
    With `handshake=False` the caller sends `connection_init` itself (see `init`)."""
    async with ws_connect(
        url, subprotocols=[PROTOCOL], additional_headers=headers, open_timeout=5
    ) as websocket:
        client = GraphQLWebSocket(websocket)
        if handshake:
            await client.handshake(payload)
        yield client


def bearer(token: str) -> dict[str, str]:
    """A `connection_init` payload carrying the token."""
    return {"authorization": f"Bearer {token}"}
