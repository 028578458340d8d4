"""Contract error codes (API.md, Errors), produced in one place for GraphQL errors, the
401 of a bad token and the WebSocket protocol's own errors."""

from __future__ import annotations

import re
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError

from core.errors import QueryTooComplex, ServiceUnavailable, TaskchatError
from core.logging import get_logger
from db.availability import is_unavailable

log = get_logger("taskchat.graphql")

#: graphql-core's parser refusing a document (the other limits raise QueryTooComplex)
_TOO_COMPLEX_MARKERS = (
    "Document contains more than",
    "is nested too deeply",
)


def error_entry(message: str, code: str, **extensions: Any) -> dict[str, Any]:
    """One entry of a response's `errors`, as a transport sends it."""
    return {"message": message, "extensions": {"code": code, **extensions}}


def with_protocol_code(entry: dict[str, Any]) -> dict[str, Any]:
    """An error the transport's protocol layer made itself (e.g. "Subscription limit
    reached") carries no code: it is the client's request that was wrong."""
    entry.setdefault("extensions", {}).setdefault("code", "BAD_USER_INPUT")
    return entry


def code_for_graphql_error(error: GraphQLError) -> str:
    """Errors graphql-core raised itself (no original exception)."""
    if any(marker in error.message for marker in _TOO_COMPLEX_MARKERS):
        return "QUERY_TOO_COMPLEX"
    if isinstance(error, GraphQLSyntaxError):
        return "GRAPHQL_PARSE_FAILED"
    if error.message.startswith("Variable '$"):
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


def _with_code(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


_SUGGESTION = re.compile(r"\s*Did you mean .*\?$", re.DOTALL)


def without_suggestions(message: str) -> str:
    """graphql-core's "Did you mean 'conversation'?" tells a stranger the schema's names."""
    return _SUGGESTION.sub("", message)


def with_contract_code(
    error: GraphQLError,
    *,
    request_id: str | None,
    operation: str | None,
    hide_suggestions: bool = False,
) -> GraphQLError:
    """The error with its contract code. An unexpected exception is logged with the
    request id and answered generically: no stack trace, no SQL."""
    if error.extensions and "code" in error.extensions:
        return error
    original = error.original_error
    # strawberry wraps a resolver's exception once more in some paths
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    if isinstance(original, TaskchatError):
        return _with_code(error, original.message, {"code": original.code, **original.extensions})
    if isinstance(original, RecursionError):
        # a document (or a value in it) nested deeper than the parser can follow
        message = "the document is nested too deeply"
        return _with_code(error, message, {"code": QueryTooComplex.code})
    if original is None or isinstance(original, GraphQLError):
        message = without_suggestions(error.message) if hide_suggestions else error.message
        return _with_code(error, message, {"code": code_for_graphql_error(error)})
    if is_unavailable(original):
        log.warning("database unavailable", request_id=request_id, error=type(original).__name__)
        unavailable = ServiceUnavailable()
        return _with_code(
            error, unavailable.message, {"code": unavailable.code, **unavailable.extensions}
        )
    log.error(
        "unexpected error",
        request_id=request_id,
        operation=operation,
        path=error.path,
        exc_info=original,
    )
    return _with_code(
        error,
        f"Internal server error (request id {request_id})",
        {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    )
