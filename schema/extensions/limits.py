"""Depth, alias and cost limits in one pass over the document, before validation.

Each fragment is measured once and its measure reused wherever it is spread, so the
work is linear in the document's size even when fragments spread each other
exponentially (the expanded document those describe is what the limits count). An
operation over a limit is refused before graphql-core's validation runs, since some of
its rules take super-linear time on exactly such documents.

The cost counts every field once, and everything under a connection once per item of
its page: the page size comes from a literal, the request's variable, or the variable's
default value; connections are recognised by their type, so selecting one through an
inline or named fragment costs the same as selecting it directly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)
from strawberry.extensions import SchemaExtension

from core.errors import QueryTooComplex
from db.pagination import PAGE_BOUNDS

#: a connection's page when no size is given, and at most (every list's bounds)
ASSUMED_PAGE = PAGE_BOUNDS.default
MAX_PAGE = PAGE_BOUNDS.maximum


@dataclass(frozen=True, slots=True)
class Measure:
    depth: int = 0
    aliases: int = 0
    cost: int = 0
    #: the most times one response name (or one fragment) is selected in one selection
    #: set: graphql-core's OverlappingFieldsCanBeMerged compares those pairwise
    repeats: int = 0

    def __add__(self, other: Measure) -> Measure:
        return Measure(
            max(self.depth, other.depth),
            self.aliases + other.aliases,
            self.cost + other.cost,
            max(self.repeats, other.repeats),
        )


NOTHING = Measure()


class _Measurer:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self._schema = schema
        self._fragments = fragments
        self._variables = variables
        self._measured: dict[str, Measure] = {}
        self._measuring: set[str] = set()

    def operation(self, operation: OperationDefinitionNode) -> Measure:
        root = self._schema.get_root_type(operation.operation)
        defaults = {
            definition.variable.name.value: definition.default_value
            for definition in operation.variable_definitions or ()
            if isinstance(definition.default_value, IntValueNode)
        }
        self._defaults = {name: int(value.value) for name, value in defaults.items()}
        return self._selections(operation.selection_set, root)

    def _selections(
        self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType | None
    ) -> Measure:
        if selection_set is None:
            return NOTHING
        total = self._contents(selection_set, parent)
        repeats = _repeats(selection_set)
        return total if repeats <= total.repeats else replace(total, repeats=repeats)

    def _contents(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None
    ) -> Measure:
        total = NOTHING
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self._field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                narrowed = parent if condition is None else self._type(condition.name.value)
                total += self._contents(selection.selection_set, narrowed)
            elif isinstance(selection, FragmentSpreadNode):
                total += self._fragment(selection.name.value)
        return total

    def _field(self, field: FieldNode, parent: GraphQLNamedType | None) -> Measure:
        name = field.name.value
        field_type = _field_type(parent, name)
        inner = self._selections(field.selection_set, field_type)
        items = self._page_size(field) if _is_connection(field_type) else 1
        # introspection does not count towards depth (GraphiQL's query nests deeply)
        has_depth = field.selection_set is not None and not name.startswith("__")
        return Measure(
            depth=1 + inner.depth if has_depth else 0,
            aliases=inner.aliases + (1 if field.alias is not None else 0),
            cost=1 + inner.cost * items,
            repeats=inner.repeats,
        )

    def _fragment(self, name: str) -> Measure:
        measured = self._measured.get(name)
        if measured is not None:
            return measured
        fragment = self._fragments.get(name)
        if fragment is None or name in self._measuring:
            return NOTHING  # unknown or cyclic: validation reports it
        self._measuring.add(name)
        try:
            measured = self._selections(
                fragment.selection_set, self._type(fragment.type_condition.name.value)
            )
        finally:
            self._measuring.discard(name)
        self._measured[name] = measured
        return measured

    def _type(self, name: str) -> GraphQLNamedType | None:
        return self._schema.get_type(name)

    def _page_size(self, field: FieldNode) -> int:
        for argument in field.arguments or ():
            if argument.name.value not in ("first", "last"):
                continue
            value: object = None
            if isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                variable = argument.value.name.value
                value = self._variables.get(variable, self._defaults.get(variable))
            if isinstance(value, int) and not isinstance(value, bool):
                return max(1, min(value, MAX_PAGE))
        return ASSUMED_PAGE


def _repeats(selection_set: SelectionSetNode) -> int:
    """How often the most repeated response name or fragment spread occurs in this
    selection set, inline fragments flattened into it."""
    seen: Counter[str] = Counter()
    pending = [selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                seen[(selection.alias or selection.name).value] += 1
            elif isinstance(selection, FragmentSpreadNode):
                seen["..." + selection.name.value] += 1
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
    return max(seen.values(), default=0)


def _field_type(parent: GraphQLNamedType | None, name: str) -> GraphQLNamedType | None:
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        field = parent.fields.get(name)
        if field is not None:
            named: GraphQLNamedType = get_named_type(field.type)
            return named
    return None


def _is_connection(field_type: GraphQLNamedType | None) -> bool:
    return isinstance(field_type, GraphQLObjectType) and {"edges", "pageInfo"} <= set(
        field_type.fields
    )


def measure_operations(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any],
    operation_name: str | None,
) -> list[tuple[OperationDefinitionNode, Measure]]:
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    # a measurer per operation: fragment measures depend on its variables' defaults
    return [
        (definition, _Measurer(schema, fragments, variables).operation(definition))
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
        and (
            operation_name is None or (definition.name and definition.name.value == operation_name)
        )
    ]


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int
    max_aliases: int
    max_cost: int
    #: no real client selects one field (or spreads one fragment) this often in one place
    max_repeats: int = 20


class DocumentLimits(SchemaExtension):
    """Refuses an operation over the depth, alias or cost limit (`QUERY_TOO_COMPLEX`).
    Listed before `CachedValidation`, which then skips the refused operation."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            problem = limit_problem(
                self.limits,
                measure_operations(
                    context.schema._schema,
                    document,
                    context.variables or {},
                    context.operation_name,
                ),
            )
            if problem is not None:
                message, node = problem
                context.pre_execution_errors = [
                    GraphQLError(message, node, original_error=QueryTooComplex(message))
                ]
        yield


def limit_problem(
    limits: Limits, measures: list[tuple[OperationDefinitionNode, Measure]]
) -> tuple[str, OperationDefinitionNode | None] | None:
    """The first limit the measured operations exceed (message, operation), if any."""
    aliases = sum(measure.aliases for _, measure in measures)
    if aliases > limits.max_aliases:
        return f"{aliases} aliases found. Allowed: {limits.max_aliases}", None
    for operation, measure in measures:
        name = operation.name.value if operation.name else "anonymous"
        if measure.repeats > limits.max_repeats:
            return (
                f"'{name}' selects one field or fragment {measure.repeats} times in one "
                f"selection set (at most {limits.max_repeats})",
                operation,
            )
        if measure.depth > limits.max_depth:
            return f"'{name}' exceeds maximum operation depth of {limits.max_depth}", operation
        if measure.cost > limits.max_cost:
            estimate = f"{measure.cost:,}" if measure.cost < 10**15 else "more than 10^15"
            return (
                f"the operation exceeds the maximum query cost of {limits.max_cost} "
                f"(estimated {estimate}); ask for smaller pages",
                operation,
            )
    return None
