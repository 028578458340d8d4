"""Which requests a plan answers: a document is analysed once (parsed, validated, its
limits measured where they do not depend on the request) and planned once per value of
the variables its `@skip`/`@include` read. A request gets a plan only if normal
execution would run it without an error it could foresee: the same token limit,
validation rules, depth/alias/cost limits and variable coercion."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache
from graphql import (
    ArgumentNode,
    DirectiveNode,
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    VariableNode,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
    visit,
)
from graphql.execution.values import VariableValues, get_variable_values
from graphql.language import Visitor

from schema.compiled.collect import Uncompilable
from schema.compiled.plan import Plan, plan_operation
from schema.extensions.limits import Limits, limit_problem, measure_operations
from schema.extensions.parsing import is_cacheable

#: documents analysed (each with its plans); a miss costs one analysis, never an error
DOCUMENTS_CACHED = 512
#: plans per document (one per combination of its `@skip`/`@include` values): past it,
#: other combinations run through normal execution, so no document grows memory unbounded
PLANS_PER_DOCUMENT = 8


class _OverLimitsNow:
    """A document whose page sizes come from variables, over a limit with this
    request's: nothing is cached, the next request is measured with its own."""


_OVER_LIMITS_NOW = _OverLimitsNow()


@dataclass(slots=True)
class _Document:
    document: DocumentNode
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    #: variables read by `@skip`/`@include`: their values select the plan
    directive_variables: tuple[str, ...]
    #: variables that size a page: the cost limit is measured per request then
    sizes_from_variables: bool
    plans: dict[tuple[Any, ...], Plan | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Prepared:
    plan: Plan
    variables: VariableValues
    #: the operation's name in the document (the request need not name it)
    operation_name: str | None


class _Scan(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.directive_variables: set[str] = set()
        self.sizes_from_variables = False

    def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
        for argument in node.arguments or ():
            if isinstance(argument.value, VariableNode):
                self.directive_variables.add(argument.value.name.value)

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        if node.name.value in ("first", "last") and isinstance(node.value, VariableNode):
            self.sizes_from_variables = True


class CompiledOperations:
    def __init__(self, schema: GraphQLSchema, limits: Limits, max_tokens: int) -> None:
        self._schema = schema
        self._limits = limits
        self._max_tokens = max_tokens
        self._documents: LRUCache[tuple[str, str | None], _Document | None] = LRUCache(
            DOCUMENTS_CACHED
        )

    def prepare(
        self, query: str, operation_name: str | None, variables: Mapping[str, Any] | None
    ) -> Prepared | None:
        """The plan for this request, or `None`: normal execution answers it."""
        if not is_cacheable(query) or len(operation_name or "") > len(query):
            # kept by neither path (large one-off documents would fill memory); a name
            # longer than the document names none of its operations
            return None
        raw = dict(variables or {})
        key = (query, operation_name)
        try:
            analysed = self._documents[key]
        except KeyError:
            found = self._analyse(query, operation_name, raw)
            if isinstance(found, _OverLimitsNow):
                return None  # these variables are over a limit; others may not be
            analysed = self._documents[key] = found
        if analysed is None:
            return None
        coerced = get_variable_values(
            self._schema, analysed.operation.variable_definitions or (), raw, max_errors=1
        )
        if not isinstance(coerced, VariableValues):
            return None
        if analysed.sizes_from_variables and self._over_limits(
            analysed.document, raw, operation_name
        ):
            return None
        values = tuple(coerced.coerced.get(name) for name in analysed.directive_variables)
        try:
            plan = analysed.plans[values]
        except KeyError:
            if len(analysed.plans) >= PLANS_PER_DOCUMENT:
                return None
            directive_values = dict(zip(analysed.directive_variables, values, strict=True))
            plan = analysed.plans[values] = self._plan(analysed, directive_values)
        if plan is None:
            return None
        name = analysed.operation.name
        return Prepared(plan, coerced, None if name is None else name.value)

    def _analyse(
        self, query: str, operation_name: str | None, variables: Mapping[str, Any]
    ) -> _Document | _OverLimitsNow | None:
        """As normal execution checks a document: parsed under the token limit, measured
        against the other limits, and only then validated (some validation rules take
        quadratic time on exactly the documents the limits refuse)."""
        try:
            document = parse(query, max_tokens=self._max_tokens)
        except (GraphQLError, RecursionError):
            return None
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation.value != "query":
            return None
        scan = _Scan()
        visit(document, scan)
        if self._over_limits(document, variables, operation_name):
            return _OVER_LIMITS_NOW if scan.sizes_from_variables else None
        if validate(self._schema, document, specified_rules):
            return None
        fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        return _Document(
            document,
            operation,
            fragments,
            tuple(sorted(scan.directive_variables)),
            scan.sizes_from_variables,
        )

    def _over_limits(
        self, document: DocumentNode, variables: Mapping[str, Any], operation_name: str | None
    ) -> bool:
        measures = measure_operations(self._schema, document, variables, operation_name)
        return limit_problem(self._limits, measures) is not None

    def _plan(self, analysed: _Document, directive_values: Mapping[str, Any]) -> Plan | None:
        try:
            return plan_operation(
                self._schema, analysed.operation, analysed.fragments, directive_values
            )
        except Uncompilable:
            return None
