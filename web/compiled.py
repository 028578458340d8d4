"""The compiled path, in front of the whole middleware stack: a plain JSON POST whose
document has a plan (`schema.compiled`) is answered here, its rows rendered straight
into the response bytes, with what the stack would add to it (request id, deadline,
`nosniff`, CORS, request metrics) added here in one pass; every other request — and any
that would answer an error, down to a bad cursor — goes on to the stack untouched (its
body replayed), which answers it as it always has. `tests/api/test_compiled_operations.py`
checks both send the same bytes and headers."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import orjson
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.auth import Principal
from core.logging import get_logger
from core.metrics import COMPILED_OPERATIONS
from resolvers.context import Context
from resolvers.resources import AppResources
from schema.compiled.operations import CompiledOperations, Prepared
from schema.extensions.operation_log import observe_operation
from web.middleware import count_response, request_id_of
from web.persisted import PersistedDocuments, PersistedQueryError
from web.security import NOSNIFF, cors_options
from web.timeouts import timeout_answer

log = get_logger("taskchat.compiled")

GRAPHQL_RESPONSE_JSON = b"application/graphql-response+json"
_JSON_HEADERS = [(b"content-type", b"application/json")]
_GRAPHQL_RESPONSE_HEADERS = [(b"content-type", GRAPHQL_RESPONSE_JSON)]
#: where the CORS layer finds the answer it wraps
_ANSWER = "taskchat.compiled_answer"

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class _Pass(Exception):
    """Normal execution answers this request."""


class CompiledOperationsFront:
    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str,
        operations: CompiledOperations,
        resources: AppResources,
        persisted: PersistedDocuments,
        max_body: int,
        request_timeout: float,
        allowed_origins: list[str],
    ) -> None:
        self.app = app
        self.path = path
        self.operations = operations
        self.resources = resources
        self.persisted = persisted
        self.max_body = max_body
        self.request_timeout = request_timeout
        # CORS as the stack's own layer gives it (same class, same settings), around a
        # responder that sends the answer already made
        self.cors = (
            CORSMiddleware(_send_answer, **cors_options(allowed_origins))
            if allowed_origins
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if not self._candidate(headers) or _repeats_a_header(scope["headers"]):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away
            return
        request_id = request_id_of(scope)
        answer: Answer | None
        try:
            async with asyncio.timeout(self.request_timeout):
                answer = await self._answer(request_id, headers, body)
        except _Pass:
            answer = None
        except TimeoutError:
            answer = (503, *timeout_answer(self.request_timeout))
        if answer is None:
            COMPILED_OPERATIONS.labels("passed").inc()
            await self.app(scope, _replay(body, receive), send)
            return
        if answer[0] == 200:
            COMPILED_OPERATIONS.labels("compiled").inc()
        status, response_headers, content = answer
        response_headers.append((b"x-request-id", request_id.encode()))
        response_headers.append(NOSNIFF)
        count_response(self.path, status)
        if self.cors is not None:
            scope[_ANSWER] = answer
            await self.cors(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": content})

    def _candidate(self, headers: dict[bytes, bytes]) -> bool:
        """A JSON body of a known, bounded size, with a token: what a plan can answer."""
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            return False
        if b"authorization" not in headers:
            return False
        accept = headers.get(b"accept", b"")
        if b"multipart" in accept or b"text/event-stream" in accept:
            return False
        length = headers.get(b"content-length")
        return length is not None and length.isdigit() and int(length) <= self.max_body

    async def _answer(self, request_id: str, headers: dict[bytes, bytes], body: bytes) -> Answer:
        started = time.perf_counter()
        prepared = self._prepare(body)
        principal = await self._principal(headers)
        context = Context(self.resources, principal, request_id)
        try:
            data = await prepared.plan.run(context, prepared.variables)
        except Exception as error:  # normal execution answers it, error and all
            raise _Pass from error
        finally:
            await context.close()
        content = orjson.dumps({"data": data}, default=_isoformat)
        elapsed = time.perf_counter() - started
        observe_operation(context, prepared.operation_name, "query", "ok", elapsed)
        negotiated = GRAPHQL_RESPONSE_JSON in headers.get(b"accept", b"")
        response_headers = [
            *(_GRAPHQL_RESPONSE_HEADERS if negotiated else _JSON_HEADERS),
            (b"content-length", str(len(content)).encode()),
        ]
        return 200, response_headers, content

    def _prepare(self, body: bytes) -> Prepared:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _Pass from None
        if not isinstance(payload, dict):
            raise _Pass
        query, variables = payload.get("query"), payload.get("variables")
        operation_name, extensions = payload.get("operationName"), payload.get("extensions")
        if not isinstance(query, str | None) or not isinstance(operation_name, str | None):
            raise _Pass
        if not isinstance(variables, dict | None) or not isinstance(extensions, dict | None):
            raise _Pass
        document_id = None
        if query is None and (extensions or {}).get("persistedQuery") is None:
            document_id = payload.get("documentId") or payload.get("doc_id")
        try:
            document = self.persisted.resolve(query, extensions, document_id)
        except PersistedQueryError:
            raise _Pass from None
        if document is None:
            raise _Pass
        prepared = self.operations.prepare(document, operation_name, variables)
        if prepared is None:
            raise _Pass
        return prepared

    async def _principal(self, headers: dict[bytes, bytes]) -> Principal:
        try:
            header = headers[b"authorization"].decode("latin-1")
            return await self.resources.verifier.verify_header(header)
        except Exception:  # a 401 is normal execution's to give
            raise _Pass from None


_SINGLE_HEADERS = frozenset({b"authorization", b"content-type", b"content-length", b"accept"})


def _repeats_a_header(raw: list[tuple[bytes, bytes]]) -> bool:
    """A header we read sent twice: which one counts is normal execution's to decide."""
    names = [name for name, _ in raw if name in _SINGLE_HEADERS]
    return len(names) != len(set(names))


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_answer(scope: Scope, receive: Receive, send: Send) -> None:
    status, headers, content = scope.pop(_ANSWER)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _isoformat(value: Any) -> str:
    """What orjson leaves to us in a plan's data: a datetime of a subclass of its own
    (a plan leaves datetimes for orjson to write; the scalar writes `isoformat()`)."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
