"""Cross-cutting concerns as schema extensions: error codes, limits, timing and logs."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import suppress
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSyntaxError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    parse,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult

from core.errors import QueryTooComplex, TaskchatError
from core.logging import get_logger
from core.metrics import GRAPHQL_DURATION, GRAPHQL_OPERATIONS

log = get_logger("taskchat.graphql")

_TOO_COMPLEX_MARKERS = (
    "exceeds maximum operation depth",
    "aliases found. Allowed",
    "Document contains more than",
)

#: how many items a connection is assumed to return when no size is given
ASSUMED_PAGE = 20
MAX_PAGE = 100


def _page_size(field: FieldNode, variables: dict[str, Any]) -> int:
    """The page a connection field asks for, from a literal or a variable's value."""
    for argument in field.arguments or ():
        if argument.name.value not in ("first", "last"):
            continue
        value: object = None
        if isinstance(argument.value, IntValueNode):
            value = int(argument.value.value)
        elif isinstance(argument.value, VariableNode):
            value = variables.get(argument.value.name.value)
        if isinstance(value, int):
            return max(1, min(value, MAX_PAGE))
    return ASSUMED_PAGE


def _is_connection(field: FieldNode) -> bool:
    if any(a.name.value in ("first", "last") for a in field.arguments or ()):
        return True
    return field.selection_set is not None and any(
        isinstance(s, FieldNode) and s.name.value == "edges" for s in field.selection_set.selections
    )


def query_cost(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
    visiting: frozenset[str] = frozenset(),
) -> int:
    """Fields the operation may resolve: every field costs 1, and everything under a
    connection counts once per item of its page."""
    if selection_set is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            inner = query_cost(selection.selection_set, fragments, variables, visiting)
            multiplier = _page_size(selection, variables) if _is_connection(selection) else 1
            total += 1 + inner * multiplier
        elif isinstance(selection, InlineFragmentNode):
            total += query_cost(selection.selection_set, fragments, variables, visiting)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in visiting:
                total += query_cost(fragment.selection_set, fragments, variables, visiting | {name})
    return total


class MaxQueryCost(SchemaExtension):
    """Refuses an operation whose estimated cost (page sizes multiplied through nested
    connections, with the request's variables) is above the limit. Runs after
    validation, where the variables are known."""

    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and not context.pre_execution_errors:
            operation = context.operation_name
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            for definition in document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                if operation is not None and (
                    definition.name is None or definition.name.value != operation
                ):
                    continue
                cost = query_cost(definition.selection_set, fragments, context.variables or {})
                if cost > self.max_cost:
                    message = (
                        f"the operation exceeds the maximum query cost of {self.max_cost} "
                        f"(estimated {cost}); ask for smaller pages"
                    )
                    context.pre_execution_errors = [
                        GraphQLError(message, definition, original_error=QueryTooComplex(message))
                    ]
                    break
        yield


def _code_for_graphql_error(error: GraphQLError) -> str:
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


@lru_cache(maxsize=512)
def _parse(query: str, max_tokens: int | None) -> DocumentNode:
    return parse(query, max_tokens=max_tokens)


MAX_OPERATION_LABELS = 200
_OPERATION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_operation_labels: set[str] = set()


def operation_label(name: str, *, is_authenticated: bool) -> str:
    """Operation names are chosen by clients: only the first few hundred names of signed-in
    clients become metric labels, so nobody can grow /metrics without end."""
    if name in _operation_labels:
        return name
    if not is_authenticated:
        return "unauthenticated"
    if len(_operation_labels) < MAX_OPERATION_LABELS and _OPERATION_NAME.match(name):
        _operation_labels.add(name)
        return name
    return "other"


class CachedParsing(SchemaExtension):
    """Caches parsed documents. Unlike strawberry's ParserCache it does not raise from
    its hook: a document that fails to parse is left to strawberry, which reports the
    error without skipping the other extensions' `on_operation` (ErrorCodes)."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None:
            with suppress(GraphQLError):
                context.graphql_document = _parse(
                    context.query, context.parse_options.get("max_tokens")
                )
        yield


class ErrorCodes(SchemaExtension):
    """Gives every error its contract code, in one place. Unexpected exceptions are
    logged with the request id and answered generically: no stack trace, no SQL."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        self._streamed = False
        yield
        result = self.execution_context.result
        if not self._streamed and isinstance(result, ExecutionResult | GraphQLExecutionResult):
            self._rewrite(result)
        self._observe(result, time.perf_counter() - started)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        self._streamed = True
        if isinstance(result, ExecutionResult | GraphQLExecutionResult):
            self._rewrite(result)
        yield None

    def _rewrite(self, result: ExecutionResult | GraphQLExecutionResult) -> None:
        if result.errors:
            result.errors = [self._coded(error) for error in result.errors]

    def _coded(self, error: GraphQLError) -> GraphQLError:
        if error.extensions and "code" in error.extensions:
            return error
        original = error.original_error
        # strawberry wraps a resolver's exception once more in some paths
        while isinstance(original, GraphQLError) and original.original_error is not None:
            original = original.original_error
        if isinstance(original, TaskchatError):
            return _with_code(
                error, original.message, {"code": original.code, **original.extensions}
            )
        if original is None or isinstance(original, GraphQLError):
            return _with_code(error, error.message, {"code": _code_for_graphql_error(error)})
        request_id = getattr(self.execution_context.context, "request_id", None)
        log.error(
            "unexpected error",
            request_id=request_id,
            operation=self.execution_context.operation_name,
            path=error.path,
            exc_info=original,
        )
        return _with_code(
            error,
            f"Internal server error (request id {request_id})",
            {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )

    def _observe(self, result: Any, elapsed: float) -> None:
        context = self.execution_context.context
        operation = self.execution_context.operation_name or "anonymous"
        principal = getattr(context, "principal", None)
        label = operation_label(operation, is_authenticated=principal is not None)
        try:
            kind = self.execution_context.operation_type.value
        except RuntimeError:
            kind = "unknown"
        errors = getattr(result, "errors", None) or []
        outcome = "ok"
        if errors:
            outcome = str((errors[0].extensions or {}).get("code", "INTERNAL_SERVER_ERROR"))
        GRAPHQL_OPERATIONS.labels(label, kind, outcome).inc()
        GRAPHQL_DURATION.labels(label, kind, outcome).observe(elapsed)
        log.info(
            "graphql operation",
            request_id=getattr(context, "request_id", None),
            user=getattr(principal, "subject", None),
            operation=operation,
            type=kind,
            outcome=outcome,
            elapsed_ms=round(elapsed * 1000, 2),
        )
