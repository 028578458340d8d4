"""The GraphQL endpoint: HTTP and WebSocket, auth, content negotiation, orjson."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
from cross_web import HTTPException
from fastapi import Request, Response, WebSocket
from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema import BaseSchema
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.types.unset import UnsetType

from core.auth import Principal
from core.errors import Unauthenticated
from core.logging import get_logger
from core.metrics import WS_CONNECTIONS
from resolvers.context import Context
from resolvers.resources import AppResources
from schema.error_codes import error_entry, with_protocol_code

log = get_logger("taskchat.web")

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


class UnauthenticatedRequest(Exception):
    """A token was sent and failed verification: answered 401 by the app."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def unauthenticated_body(message: str) -> bytes:
    return orjson.dumps({"data": None, "errors": [error_entry(message, "UNAUTHENTICATED")]})


def _authorization_param(params: Mapping[str, Any]) -> str | None:
    for key, value in params.items():
        if key.lower() == "authorization" and isinstance(value, str):
            return value
    return None


class WebSocketSlots:
    """Open sockets per user on this instance, to cap them."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: Counter[str] = Counter()

    def take(self, subject: str) -> bool:
        if self._open[subject] >= self._limit:
            return False
        self._open[subject] += 1
        WS_CONNECTIONS.inc()
        return True

    def give_back(self, subject: str) -> None:
        self._open[subject] -= 1
        if self._open[subject] <= 0:
            del self._open[subject]
        WS_CONNECTIONS.dec()


class CodedTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Every error we send carries a code, as API.md promises, the protocol layer's own
    included."""

    async def send_message(self, message: Any) -> None:
        if message.get("type") == "error":
            for error in message.get("payload") or []:
                with_protocol_code(error)
        await super().send_message(message)


class TaskchatGraphQLRouter(GraphQLRouter[Context, None]):
    graphql_transport_ws_handler_class = CodedTransportWSHandler

    def __init__(self, schema: BaseSchema, app: AppResources, **kwargs: Any) -> None:
        self.resources = app
        self.ws_slots = WebSocketSlots(app.settings.ws_max_connections_per_user)
        super().__init__(schema, context_getter=cast(Any, self._context_getter()), **kwargs)

    def _context_getter(self) -> Callable[..., AsyncIterator[Context]]:
        app = self.resources
        slots = self.ws_slots

        async def get_context(connection: HTTPConnection) -> AsyncIterator[Context]:
            request_id = str(
                connection.scope.get("state", {}).get("request_id") or uuid.uuid4().hex
            )
            is_websocket = connection.scope["type"] == "websocket"
            principal: Principal | None = None
            header = connection.headers.get("authorization")
            if header and not is_websocket:
                try:
                    principal = await app.verifier.verify_header(header)
                except Unauthenticated as error:
                    raise UnauthenticatedRequest(error.message) from None
            context = Context(app, principal, request_id, long_lived=is_websocket)
            try:
                yield context
            finally:
                expiry = context.extras.pop("expiry", None)
                if expiry is not None:
                    expiry.cancel()
                if context.extras.pop("ws_slot", False) and context.principal is not None:
                    slots.give_back(context.principal.subject)
                await context.close()

        return get_context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Auth at `connection_init`: a bad or missing token closes with 4403."""
        websocket = context.request
        assert isinstance(websocket, WebSocket)
        params = context.connection_params or {}
        header = _authorization_param(params) or websocket.headers.get("authorization")
        if not header:
            raise ConnectionRejectionError({"reason": "authentication required"})
        try:
            principal = await self.resources.verifier.verify_header(header)
        except Unauthenticated:
            raise ConnectionRejectionError({"reason": "invalid token"}) from None
        if not self.ws_slots.take(principal.subject):
            raise ConnectionRejectionError({"reason": "too many connections"})
        context.principal = principal
        context.extras["ws_slot"] = True
        context.extras["expiry"] = asyncio.create_task(
            _close_at_expiry(
                websocket,
                principal.expires_at
                + timedelta(seconds=self.resources.settings.jwt_leeway_seconds),
            )
        )
        return None

    async def get_sub_response(self, request: Request) -> Response:
        response = await super().get_sub_response(request)
        accept = request.headers.get("accept", "")
        # only when asked for by name: legacy clients send */* and expect application/json
        response.taskchat_graphql_response = GRAPHQL_RESPONSE_JSON in accept  # type: ignore[attr-defined]
        return response

    async def execute_single(self, *args: Any, **kwargs: Any) -> Any:
        """GraphQL over HTTP: a mutation sent with GET is 405 Method Not Allowed."""
        try:
            return await super().execute_single(*args, **kwargs)
        except HTTPException as error:
            adapter = kwargs.get("request_adapter")
            is_get = adapter is not None and adapter.method == "GET"
            if error.status_code == 400 and is_get and "not allowed" in error.reason:
                raise HTTPException(405, error.reason) from None
            raise

    def encode_json(self, data: object) -> str:
        return orjson.dumps(data).decode()

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        status = sub_response.status_code or 200
        media_type = "application/json"
        if getattr(sub_response, "taskchat_graphql_response", False):
            media_type = GRAPHQL_RESPONSE_JSON
            # GraphQL over HTTP: a request error (nothing executed) is a 4xx, and its
            # body has no `data` entry at all (not even null)
            if isinstance(response_data, dict) and _is_request_error(response_data):
                status = 400
                response_data = response_data.copy()
                response_data.pop("data", None)
        response = Response(orjson.dumps(response_data), media_type=media_type, status_code=status)
        response.headers.raw.extend(sub_response.headers.raw)
        return response


def _is_request_error(response_data: Mapping[str, Any]) -> bool:
    """Nothing executed: no data, and no error is tied to a field path."""
    errors = response_data.get("errors") or []
    return (
        response_data.get("data") is None
        and bool(errors)
        and not any(e.get("path") for e in errors)
    )


async def _close_at_expiry(websocket: WebSocket, expires_at: datetime) -> None:
    delay = (expires_at - datetime.now(UTC)).total_seconds()
    await asyncio.sleep(max(0.0, delay))
    with contextlib.suppress(Exception):
        await websocket.close(code=4403, reason="token expired")
