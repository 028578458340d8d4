"""GraphQL over HTTP beyond one JSON answer: Apollo's multipart subscriptions (with the
same per-user limit and token expiry as a WebSocket), the refusal of a subscription sent
as a plain request, persisted-document ids in the request, and `Retry-After`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from graphql import GraphQLError
from starlette.requests import Request
from strawberry.http import GraphQLRequestData
from strawberry.http.streaming import MultipartSubscriptionTransport
from strawberry.types import ExecutionResult

from resolvers.context import Context
from resolvers.resources import AppResources


class Slots(Protocol):
    """The per-user stream slots a WebSocket takes too (`web.graphql.WebSocketSlots`)."""

    def take(self, subject: str) -> bool: ...
    def give_back(self, subject: str) -> None: ...


class StreamingView(Protocol):
    """What the multipart transport needs of the router (`StreamingView`)."""

    @property
    def resources(self) -> AppResources: ...
    @property
    def ws_slots(self) -> Slots: ...

    def encode_json_string(self, data: object) -> str: ...


MULTIPART_ACCEPT = 'multipart/mixed;subscriptionSpec="1.0"'
_STREAM_KEY = "taskchat_stream"


def plain_http_subscription_refusal() -> ExecutionResult:
    message = (
        "subscriptions over HTTP need Apollo's multipart protocol "
        f"(Accept: {MULTIPART_ACCEPT}); or use the graphql-transport-ws WebSocket at /graphql"
    )
    return ExecutionResult(
        data=None, errors=[GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})]
    )


def take_stream_slot(
    view: StreamingView, request: Request, context: Context
) -> ExecutionResult | None:
    """A streamed subscription counts as one of the user's connections, like a socket."""
    principal = context.principal
    if principal is None:
        return None  # its resolvers answer UNAUTHENTICATED
    if not view.ws_slots.take(principal.subject):
        message = "too many open connections and subscription streams for this user"
        return ExecutionResult(
            data=None, errors=[GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})]
        )
    leeway = timedelta(seconds=view.resources.settings.jwt_leeway_seconds)
    request.state.taskchat_stream = (principal.subject, principal.expires_at + leeway)
    return None


def guarded_stream(
    view: StreamingView, request: Request, stream: Callable[[], AsyncIterator[str]]
) -> Callable[[], AsyncIterator[str]]:
    """Gives the slot back when the stream ends (or the client leaves), and ends the
    stream with an UNAUTHENTICATED error when the token expires."""
    taken: tuple[str, datetime] | None = getattr(request.state, _STREAM_KEY, None)
    if taken is None:
        return stream
    subject, expires_at = taken
    setattr(request.state, _STREAM_KEY, None)

    async def guarded() -> AsyncIterator[str]:
        chunks = stream()
        try:
            while True:
                remaining = (expires_at - datetime.now(UTC)).total_seconds()
                try:
                    chunk = await asyncio.wait_for(anext(chunks), max(0.0, remaining))
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    yield _expired(view)
                    return
                yield chunk
        finally:
            view.ws_slots.give_back(subject)
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]

    return guarded


def _expired(view: StreamingView) -> str:
    transport = MultipartSubscriptionTransport()
    error = {"message": "token expired", "extensions": {"code": "UNAUTHENTICATED"}}
    return (
        transport.encode_multipart_data(
            {"payload": None, "errors": [error]}, view.encode_json_string
        )
        + transport.encode_complete()
    )


async def document_id(request: Any, data: GraphQLRequestData) -> object:
    """`documentId` (GraphQL over HTTP's persisted documents) or Relay's `doc_id`, read
    only when the request carries no document and no persisted-query hash."""
    if data.query is not None or (data.extensions or {}).get("persistedQuery") is not None:
        return None
    params: Mapping[str, Any]
    if request.method == "GET":
        params = request.query_params
    else:
        try:
            decoded = orjson.loads(await request.get_body())
        except orjson.JSONDecodeError:
            return None
        params = decoded if isinstance(decoded, dict) else {}
    return params.get("documentId") or params.get("doc_id")


def retry_after(response_data: object) -> int | None:
    """The largest `extensions.retryAfter` among the errors (of every batched result)."""
    results = response_data if isinstance(response_data, list) else [response_data]
    seconds: list[int] = []
    for result in results:
        if not isinstance(result, Mapping):
            continue
        for error in result.get("errors") or []:
            value = ((error or {}).get("extensions") or {}).get("retryAfter")
            if isinstance(value, int | float) and not isinstance(value, bool):
                seconds.append(max(0, int(value + 0.999)))
    return max(seconds) if seconds else None
