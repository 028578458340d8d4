"""The GraphQL endpoint: HTTP and WebSocket, auth, content negotiation, orjson."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
from cross_web import HTTPException
from fastapi import Request, Response, WebSocket
from fastapi.responses import HTMLResponse
from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema import BaseSchema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    CompleteMessage,
    SubscribeMessage,
)
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UnsetType

from core.auth import Principal
from core.errors import Unauthenticated
from core.logging import get_logger
from core.metrics import WS_CONNECTIONS
from resolvers.context import Context
from resolvers.live import COMPLETED_TASKS
from resolvers.resources import AppResources
from schema.error_codes import error_entry, with_protocol_code
from web import http_protocols
from web.graphiql import graphiql_html
from web.persisted import PersistedDocuments, PersistedQueryError, request_error_body

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

    async def handle_complete(self, message: CompleteMessage) -> None:
        """A client that completes an operation asks it to end (a streamed turn then
        stops); a socket that drops does not (a streamed turn runs on, resumable). The
        operation's task is noted so the subscription can tell the two apart."""
        operation = self.operations.get(message["id"])
        if operation is not None and operation.task is not None:
            completed = self.context.extras.setdefault(COMPLETED_TASKS, weakref.WeakSet())
            completed.add(operation.task)
        await super().handle_complete(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """Persisted documents (APQ, trusted documents) apply to WebSocket operations too."""
        payload = cast(dict[str, Any], message.get("payload") or {})
        view = cast(TaskchatGraphQLRouter, self.view)
        try:
            payload["query"] = view.persisted.resolve(
                payload.get("query"), payload.get("extensions"), payload.get("documentId")
            )
        except PersistedQueryError as error:
            errors = request_error_body(error)["errors"]
            await self.send_message({"id": message["id"], "type": "error", "payload": errors})
            return
        await super().handle_subscribe(message)


class TaskchatGraphQLRouter(GraphQLRouter[Context, None]):
    graphql_transport_ws_handler_class = CodedTransportWSHandler

    def __init__(
        self,
        schema: BaseSchema,
        app: AppResources,
        *,
        persisted: PersistedDocuments,
        demo_token: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.resources = app
        self.persisted = persisted
        self.demo_token = demo_token
        # one pool of slots per user: sockets and multipart HTTP subscriptions alike
        self.ws_slots = WebSocketSlots(app.settings.ws_max_connections_per_user)
        super().__init__(
            schema,
            context_getter=cast(Any, self._context_getter()),
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL),
            **kwargs,
        )

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

    def should_render_graphql_ide(self, request: Any) -> bool:
        """Not for a GET of a persisted query (`extensions` without `query`)."""
        if request.query_params.get("extensions") is not None:
            return False
        return super().should_render_graphql_ide(request)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(graphiql_html(self.demo_token))

    async def run(self, request: Any, context: Any = None, root_value: Any = None) -> Any:
        """A persisted document that cannot be run is a request error with its code."""
        try:
            return await super().run(request, context, root_value)
        except PersistedQueryError as error:
            sub_response = await self.get_sub_response(request)
            sub_response.status_code = error.status
            return self.create_response(
                cast(GraphQLHTTPResponse, request_error_body(error)), sub_response
            )

    async def parse_http_body(self, request: Any) -> Any:
        data = await super().parse_http_body(request)
        if isinstance(data, GraphQLRequestData):
            data.query = self.persisted.resolve(
                data.query, data.extensions, await http_protocols.document_id(request, data)
            )
        else:
            for item in data:
                item.query = self.persisted.resolve(item.query, item.extensions)
        return data

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        """Multipart subscriptions hold one of the user's connection slots while they run."""
        request_data = kwargs["request_data"]
        if isinstance(request_data, GraphQLRequestData) and request_data.protocol != "http":
            refusal = http_protocols.take_stream_slot(self, kwargs["request"], kwargs["context"])
            if refusal is not None:
                kwargs["sub_response"].status_code = 429
                return refusal
        return await super().execute_operation(*args, **kwargs)

    async def create_streaming_response(
        self,
        request: Request,
        stream: Callable[[], AsyncIterator[str]],
        sub_response: Response,
        headers: Mapping[str, str],
    ) -> Response:
        return await super().create_streaming_response(
            request, http_protocols.guarded_stream(self, request, stream), sub_response, headers
        )

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Strawberry's, except: a mutation sent with GET is 405 Method Not Allowed, and a
        subscription without Apollo's multipart protocol is refused (400, with a code)
        instead of being executed like a query."""
        method = request_adapter.method
        allowed = OperationType.from_http(method) - {OperationType.SUBSCRIPTION}
        if not self.allow_queries_via_get and method == "GET":
            allowed -= {OperationType.QUERY}
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason()) from None
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                sub_response.status_code = 400
                return http_protocols.plain_http_subscription_refusal()
            status = 405 if method == "GET" else 400
            raise HTTPException(status, error.as_http_error_reason(method)) from None
        except MissingQueryError:
            raise HTTPException(400, "No GraphQL query found in the request") from None

    def decode_json(self, data: str | bytes) -> object:
        """orjson: faster, and it refuses invalid UTF-8 and JSON nested past 1024 levels
        with a JSONDecodeError (HTTP 400, WebSocket 4400) instead of a RecursionError.
        What orjson refuses, the standard library decides: escaped lone surrogates
        (`"\\ud800"`) are valid JSON that only the latter reads (the input checks then
        answer BAD_USER_INPUT)."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
        try:
            return json.loads(data)
        except (RecursionError, UnicodeDecodeError) as error:
            raise json.JSONDecodeError(type(error).__name__, "", 0) from None

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
        retry_after = http_protocols.retry_after(response_data)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
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
