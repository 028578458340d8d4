"""Each operation counted, timed and logged, by its (bounded) name and outcome. Listed
before `ErrorCodes`, so it exits after it and sees the final codes."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

from strawberry.extensions import SchemaExtension

from core.logging import get_logger
from core.metrics import GRAPHQL_DURATION, GRAPHQL_OPERATIONS, series

log = get_logger("taskchat.graphql")

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


class OperationLog(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self._observe(self.execution_context.result, time.perf_counter() - started)

    def _observe(self, result: Any, elapsed: float) -> None:
        context = self.execution_context.context
        try:
            kind = self.execution_context.operation_type.value
        except RuntimeError:
            kind = "unknown"
        errors = getattr(result, "errors", None) or []
        outcome = "ok"
        if errors:
            outcome = str((errors[0].extensions or {}).get("code", "INTERNAL_SERVER_ERROR"))
        observe_operation(context, self.execution_context.operation_name, kind, outcome, elapsed)


def observe_operation(
    context: Any, operation_name: str | None, kind: str, outcome: str, elapsed: float
) -> None:
    """Counts, times and logs one operation (normal execution or a compiled plan)."""
    operation = operation_name or "anonymous"
    principal = getattr(context, "principal", None)
    label = operation_label(operation, is_authenticated=principal is not None)
    # labels and outcomes are bounded (`operation_label`, the contract's codes)
    series(GRAPHQL_OPERATIONS, label, kind, outcome).inc()
    series(GRAPHQL_DURATION, label, kind, outcome).observe(elapsed)
    log.info(
        "graphql operation",
        request_id=getattr(context, "request_id", None),
        user=getattr(principal, "subject", None),
        operation=operation,
        type=kind,
        outcome=outcome,
        elapsed_ms=round(elapsed * 1000, 2),
    )
