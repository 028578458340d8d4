"""The query-cost limit: page sizes multiplied through nested connections."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from strawberry.extensions import SchemaExtension

from core.errors import QueryTooComplex
from db.pagination import PAGE_BOUNDS

#: a connection's page when no size is given, and at most (every list's bounds)
ASSUMED_PAGE = PAGE_BOUNDS.default
MAX_PAGE = PAGE_BOUNDS.maximum


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
