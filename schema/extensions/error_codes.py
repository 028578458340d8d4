"""Every error of an operation gets its contract code (see `schema.error_codes`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult

from schema.error_codes import with_contract_code


class ErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        self._streamed = False
        yield
        result = self.execution_context.result
        if not self._streamed and isinstance(result, ExecutionResult | GraphQLExecutionResult):
            self._rewrite(result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        self._streamed = True
        if isinstance(result, ExecutionResult | GraphQLExecutionResult):
            self._rewrite(result)
        yield None

    def _rewrite(self, result: ExecutionResult | GraphQLExecutionResult) -> None:
        if result.errors:
            request_id = getattr(self.execution_context.context, "request_id", None)
            operation = self.execution_context.operation_name
            result.errors = [
                with_contract_code(error, request_id=request_id, operation=operation)
                for error in result.errors
            ]
