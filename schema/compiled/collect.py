"""Fields of a selection set by response key, as execution collects them: fragments
whose type condition matches the object type, `@skip`/`@include` applied, fields of one
response key merged. Any other directive stops the planner (`Uncompilable`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    BooleanValueNode,
    DirectiveNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    InlineFragmentNode,
    SelectionSetNode,
    VariableNode,
)


class Uncompilable(Exception):
    """The planner does not cover this document: it runs through normal execution."""


def _directive_condition(directive: DirectiveNode, variables: Mapping[str, Any]) -> bool:
    argument = next((arg for arg in directive.arguments or () if arg.name.value == "if"), None)
    if argument is None:
        raise Uncompilable("@skip/@include without if")
    value = argument.value
    if isinstance(value, BooleanValueNode):
        return value.value
    if isinstance(value, VariableNode) and isinstance(variables.get(value.name.value), bool):
        return bool(variables[value.name.value])
    raise Uncompilable("@skip/@include on a value the planner cannot read")


def is_included(
    node: FieldNode | InlineFragmentNode | FragmentSpreadNode, variables: Mapping[str, Any]
) -> bool:
    included = True
    for directive in node.directives or ():
        name = directive.name.value
        if name == "skip":
            included = included and not _directive_condition(directive, variables)
        elif name == "include":
            included = included and _directive_condition(directive, variables)
        else:
            raise Uncompilable(f"@{name}")
    return included


def _type_matches(object_type: GraphQLObjectType, condition: str | None) -> bool:
    return (
        condition is None
        or condition == object_type.name
        or any(interface.name == condition for interface in object_type.interfaces)
    )


def collect(
    object_type: GraphQLObjectType,
    selection_sets: list[SelectionSetNode],
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> dict[str, list[FieldNode]]:
    """Response key → its field nodes, in the order execution writes them."""
    fields: dict[str, list[FieldNode]] = {}
    visited: set[str] = set()

    def visit(selection_set: SelectionSetNode) -> None:
        for selection in selection_set.selections:
            if not is_included(selection, variables):  # type: ignore[arg-type]
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                fields.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if _type_matches(object_type, condition.name.value if condition else None):
                    visit(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if name in visited or fragment is None:
                    continue
                visited.add(name)
                if _type_matches(object_type, fragment.type_condition.name.value):
                    visit(fragment.selection_set)
            else:
                raise Uncompilable(type(selection).__name__)

    for selection_set in selection_sets:
        visit(selection_set)
    return fields


def sub_selections(nodes: list[FieldNode]) -> list[SelectionSetNode]:
    return [node.selection_set for node in nodes if node.selection_set is not None]
