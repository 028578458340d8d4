"""Plans: a query operation turned, once per document, into the asks of one statement
per root field and the renderers of its rows.

The planner covers the fields clients hit hardest: `me`, `conversations`, `tasks` and
`conversation(id)` with `messages`, over the node types' plain fields (those Strawberry
resolves as attributes of the row: `title`, `createdAt`, …), `messageCount`,
`lastMessage` and `__typename`. Anything else raises `Uncompilable` and the document
runs through normal execution. Planning happens in two steps: walking the selection
collects which columns each node needs (`_Columns`), and only then are the renderers
bound to the row layout the statement will have.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from typing import Any, cast

import orjson
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLID,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    get_named_type,
)
from graphql.execution.values import VariableValues, get_argument_values
from strawberry.utils.str_converters import to_camel_case

from core.ids import to_global_id
from db.whole_pages import MessageSummary, PageAsk
from resolvers import compiled as compiled_resolvers
from resolvers.compiled import CompiledPage
from resolvers.context import Context
from schema.compiled.collect import Uncompilable, collect, sub_selections

Layout = Mapping[str, int]
Getter = Callable[[Sequence[Any]], Any]
Binder = Callable[[Layout], Getter]
PageRender = Callable[[CompiledPage], dict[str, Any]]
RootRun = Callable[[Context, VariableValues], Awaitable[Any]]

#: the sort key of each list's nodes (their cursors encode it)
_KEY_COLUMNS = {"Conversation": ("updated_at",), "Task": ("created_at",), "Message": ("seq",)}


def _plain_fields(object_type: GraphQLObjectType) -> dict[str, str]:
    """GraphQL name → the row attribute Strawberry resolves it from, for the fields that
    have no resolver of their own (each type's `from_row` copies them from the row)."""
    definition = object_type.extensions.get("strawberry-definition")
    if definition is None:
        return {}
    plain = {}
    for field in definition.fields:
        if field.base_resolver is None:
            name = field.graphql_name or to_camel_case(field.python_name)
            if name in object_type.fields:
                plain[name] = field.python_name
    return plain


def _serializer(field: GraphQLField) -> Callable[[Any], Any]:
    named = get_named_type(field.type)
    if named is GraphQLString or named is GraphQLID:
        return _same
    if not isinstance(named, GraphQLScalarType | GraphQLEnumType):
        raise Uncompilable(f"a leaf of type {named.name}")
    if (
        isinstance(named, GraphQLScalarType)
        and named.name == "DateTime"
        and _orjson_writes_as(named)
    ):
        # left a datetime: the response's orjson writes it, in C, as the scalar would
        return _same
    return cast(Callable[[Any], Any], named.serialize)


_DATETIMES = (datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC), datetime(1999, 12, 31, tzinfo=UTC))


def _orjson_writes_as(scalar: GraphQLScalarType) -> bool:
    try:
        return all(
            orjson.dumps(value).decode() == f'"{scalar.serialize(value)}"' for value in _DATETIMES
        )
    except Exception:
        return False


def _same(value: Any) -> Any:
    return value


class _Columns:
    """The columns one node's selections read, in first-asked order (`id` first: a row
    is there when its id is)."""

    def __init__(self, prefix: str, key_columns: Sequence[str] = ()) -> None:
        self.prefix = prefix
        self.names: list[str] = []
        for name in ("id", *key_columns):
            self.need(name)

    def need(self, name: str) -> str:
        if name not in self.names:
            self.names.append(name)
        return self.prefix + name


class _Summary:
    def __init__(self) -> None:
        self.count = False
        self.last: _Columns | None = None

    def ask(self) -> MessageSummary | None:
        if not self.count and self.last is None:
            return None
        return MessageSummary(self.count, tuple(self.last.names) if self.last else ())


def _layout(columns: _Columns, summary: _Summary | None, *extra: str) -> dict[str, int]:
    symbols = [columns.prefix + name for name in columns.names]
    if summary is not None and summary.count:
        symbols.append("s:count")
    if summary is not None and summary.last is not None:
        symbols.extend(summary.last.prefix + name for name in summary.last.names)
    symbols.extend(extra)
    return {symbol: index for index, symbol in enumerate(symbols)}


class _Names:
    """The values a generated renderer's source refers to, by name."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {"to_global_id": to_global_id, "repeat": repeat}

    def of(self, value: Any) -> str:
        name = f"_v{len(self.values)}"
        self.values[name] = value
        return name


def _generated(name: str, argument: str, body: str, names: _Names) -> Any:
    """A function generated from our own source: field names and response keys (GraphQL
    names, written by `repr`), row indexes; every value goes in by `names`."""
    source = f"def {name}({argument}):\n{body}\n"
    exec(compile(source, f"<compiled {name}>", "exec"), names.values)  # noqa: S102 (see above)
    return names.values[name]


class _Expression:
    """A binder that writes its getter as a Python expression of `row`: a node's fields
    render in one generated function, with no call per field."""

    __slots__ = ("_write",)

    def __init__(self, write: Callable[[Layout, _Names], str]) -> None:
        self._write = write

    def __call__(self, layout: Layout) -> Getter:
        names = _Names()
        body = f"    return {self.source(layout, names)}"
        getter: Getter = _generated("render", "row", body, names)
        return getter

    def source(self, layout: Layout, names: _Names) -> str:
        return self._write(layout, names)


def _source(binder: Binder, layout: Layout, names: _Names) -> str:
    """`binder`'s getter applied to `row`, as source: inline when it is an expression."""
    if isinstance(binder, _Expression):
        return binder.source(layout, names)
    return f"{names.of(binder(layout))}(row)"


def _constant(value: Any) -> Binder:
    return _Expression(lambda layout, names: names.of(value))


def _leaf(symbol: str, serialize: Callable[[Any], Any]) -> Binder:
    def write(layout: Layout, names: _Names) -> str:
        index = layout[symbol]
        if serialize is _same:
            return f"row[{index}]"
        return f"(None if row[{index}] is None else {names.of(serialize)}(row[{index}]))"

    return _Expression(write)


def _global_id(type_name: str, symbol: str) -> Binder:
    def write(layout: Layout, names: _Names) -> str:
        return f"to_global_id({names.of(type_name)}, row[{layout[symbol]}])"

    return _Expression(write)


@dataclass(frozen=True, slots=True)
class _Operation:
    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]
    #: the values `@skip`/`@include` read (the plan is cached per their values)
    directive_values: Mapping[str, Any]

    def collect(self, object_type: GraphQLObjectType, nodes: list[FieldNode]) -> Any:
        return collect(object_type, sub_selections(nodes), self.fragments, self.directive_values)

    def field_type(self, parent: GraphQLObjectType, name: str) -> GraphQLObjectType:
        named = get_named_type(parent.fields[name].type)
        if not isinstance(named, GraphQLObjectType):
            raise Uncompilable(name)
        return named


def _node(
    op: _Operation,
    object_type: GraphQLObjectType,
    nodes: list[FieldNode],
    columns: _Columns,
    summary: _Summary | None,
    specials: Mapping[str, Callable[[list[FieldNode]], Binder]] | None = None,
) -> Binder:
    """A node's object: plain fields from its columns; on a conversation row (with a
    `summary`), `messageCount` and `lastMessage` from the summary's columns."""
    plain = _plain_fields(object_type)
    binders: list[tuple[str, Binder]] = []
    for key, field_nodes in op.collect(object_type, nodes).items():
        name = field_nodes[0].name.value
        if name == "__typename":
            binders.append((key, _constant(object_type.name)))
        elif name == "id" and "id" in plain:
            binders.append((key, _global_id(object_type.name, columns.need("id"))))
        elif name in plain and not field_nodes[0].arguments:
            field = object_type.fields[name]
            binders.append((key, _leaf(columns.need(plain[name]), _serializer(field))))
        elif specials is not None and name in specials:
            binders.append((key, specials[name](field_nodes)))
        elif summary is not None and name == "messageCount":
            summary.count = True
            binders.append((key, _leaf("s:count", _same)))
        elif summary is not None and name == "lastMessage":
            if summary.last is None:
                summary.last = _Columns("l:")
            message_type = op.field_type(object_type, name)
            inner = _node(op, message_type, field_nodes, summary.last, None)
            binders.append((key, _present_if("l:id", inner)))
        else:
            raise Uncompilable(f"{object_type.name}.{name}")

    def write(layout: Layout, names: _Names) -> str:
        fields = ", ".join(f"{key!r}: {_source(b, layout, names)}" for key, b in binders)
        return "{" + fields + "}"

    return _Expression(write)


def _present_if(symbol: str, inner: Binder) -> Binder:
    def write(layout: Layout, names: _Names) -> str:
        index = layout[symbol]
        return f"(None if row[{index}] is None else {_source(inner, layout, names)})"

    return _Expression(write)


@dataclass(slots=True)
class _Connection:
    """A connection's selection: what its nodes need, and its renderer once bound."""

    columns: _Columns
    summary: _Summary | None
    total: bool
    cursors: bool
    binders: list[tuple[str, Callable[[Layout], Callable[[CompiledPage], Any]]]]

    def ask(self) -> PageAsk:
        summary = None if self.summary is None else self.summary.ask()
        return PageAsk(tuple(self.columns.names), self.total, summary)

    def bind(self) -> PageRender:
        layout = _layout(self.columns, self.summary)
        entries = [(key, binder(layout)) for key, binder in self.binders]

        def render(page: CompiledPage) -> dict[str, Any]:
            return {key: getter(page) for key, getter in entries}

        return render


def _connection(
    op: _Operation, connection_type: GraphQLObjectType, nodes: list[FieldNode], with_summary: bool
) -> _Connection:
    edge_type = op.field_type(connection_type, "edges")
    node_type = op.field_type(edge_type, "node")
    columns = _Columns("n:", _KEY_COLUMNS[node_type.name])
    summary = _Summary() if with_summary else None
    plan = _Connection(columns, summary, total=False, cursors=False, binders=[])
    for key, field_nodes in op.collect(connection_type, nodes).items():
        name = field_nodes[0].name.value
        if name == "__typename":
            plan.binders.append((key, _constant_of_page(connection_type.name)))
        elif name == "totalCount":
            plan.total = True
            plan.binders.append((key, lambda layout: _total))
        elif name == "edges":
            plan.binders.append((key, _edges(op, plan, edge_type, node_type, field_nodes)))
        elif name == "pageInfo":
            page_info_type = op.field_type(connection_type, name)
            plan.binders.append((key, _page_info(op, plan, page_info_type, field_nodes)))
        else:
            raise Uncompilable(f"{connection_type.name}.{name}")
    return plan


def _total(page: CompiledPage) -> Any:
    return page.total


def _edges(
    op: _Operation,
    plan: _Connection,
    edge_type: GraphQLObjectType,
    node_type: GraphQLObjectType,
    nodes: list[FieldNode],
) -> Callable[[Layout], Callable[[CompiledPage], Any]]:
    parts: list[tuple[str, Any]] = []
    for key, field_nodes in op.collect(edge_type, nodes).items():
        name = field_nodes[0].name.value
        if name == "__typename":
            parts.append((key, ("constant", edge_type.name)))
        elif name == "cursor":
            plan.cursors = True
            parts.append((key, ("cursor", None)))
        elif name == "node":
            parts.append(
                (key, ("node", _node(op, node_type, field_nodes, plan.columns, plan.summary)))
            )
        else:
            raise Uncompilable(f"{edge_type.name}.{name}")

    def bind(layout: Layout) -> Callable[[CompiledPage], Any]:
        names = _Names()
        edge = ", ".join(
            f"{key!r}: {_edge_part(kind, value, layout, names)}" for key, (kind, value) in parts
        )
        body = (
            "    cursors = page.cursors if page.cursors is not None else repeat(None)\n"
            f"    return [{{{edge}}} for row, cursor in zip(page.rows, cursors)]"
        )
        render: Callable[[CompiledPage], Any] = _generated("edges", "page", body, names)
        return render

    return bind


def _edge_part(kind: str, value: Any, layout: Layout, names: _Names) -> str:
    if kind == "node":
        return _source(value, layout, names)
    if kind == "cursor":
        return "cursor"
    return names.of(value)


_PAGE_INFO: dict[str, Callable[[CompiledPage], Any]] = {
    "hasNextPage": lambda page: page.has_next_page,
    "hasPreviousPage": lambda page: page.has_previous_page,
    "startCursor": lambda page: page.cursors[0] if page.cursors else None,
    "endCursor": lambda page: page.cursors[-1] if page.cursors else None,
}


def _constant_of_page(value: Any) -> Callable[[Layout], Callable[[CompiledPage], Any]]:
    return lambda layout: lambda page: value


def _named(type_name: str) -> Callable[[CompiledPage], Any]:
    return lambda page: type_name


def _page_info(
    op: _Operation, plan: _Connection, page_info_type: GraphQLObjectType, nodes: list[FieldNode]
) -> Callable[[Layout], Callable[[CompiledPage], Any]]:
    parts: list[tuple[str, Callable[[CompiledPage], Any]]] = []
    for key, field_nodes in op.collect(page_info_type, nodes).items():
        name = field_nodes[0].name.value
        if name == "__typename":
            parts.append((key, _named(page_info_type.name)))
        elif name in _PAGE_INFO:
            plan.cursors = plan.cursors or name in ("startCursor", "endCursor")
            parts.append((key, _PAGE_INFO[name]))
        else:
            raise Uncompilable(f"{page_info_type.name}.{name}")

    def bind(layout: Layout) -> Callable[[CompiledPage], Any]:
        return lambda page: {key: getter(page) for key, getter in parts}

    return bind


def _arguments(field: GraphQLField, node: FieldNode, variables: VariableValues) -> dict[str, Any]:
    return get_argument_values(field, node, variables)


def _list_root(op: _Operation, root: GraphQLObjectType, nodes: list[FieldNode]) -> RootRun:
    name = nodes[0].name.value
    field = root.fields[name]
    connection_type = op.field_type(root, name)
    is_conversations = name == "conversations"
    plan = _connection(op, connection_type, nodes, with_summary=is_conversations)
    ask, render, cursors = plan.ask(), plan.bind(), plan.cursors

    async def run(ctx: Context, variables: VariableValues) -> Any:
        args = _arguments(field, nodes[0], variables)
        window = {key: args.get(key) for key in ("first", "after", "last", "before")}
        if is_conversations:
            page = await compiled_resolvers.conversations_page(
                ctx, ask, cursors, **window, status=args.get("status"), search=args.get("search")
            )
        else:
            page = await compiled_resolvers.tasks_page(
                ctx, ask, cursors, **window, status=args.get("status")
            )
        return render(page)

    return run


def _conversation_root(op: _Operation, root: GraphQLObjectType, nodes: list[FieldNode]) -> RootRun:
    field = root.fields["conversation"]
    conversation_type = op.field_type(root, "conversation")
    columns, summary = _Columns("n:"), _Summary()
    messages: list[tuple[FieldNode, _Connection]] = []

    def messages_binder(field_nodes: list[FieldNode]) -> Binder:
        if messages:
            raise Uncompilable("two selections of messages")
        connection_type = op.field_type(conversation_type, "messages")
        messages.append((field_nodes[0], _connection(op, connection_type, field_nodes, False)))
        return lambda layout: _page_renderer(layout, messages[0][1])

    binder = _node(op, conversation_type, nodes, columns, summary, {"messages": messages_binder})
    layout = _layout(columns, summary, "p:messages")
    render = binder(layout)
    message_field = conversation_type.fields["messages"]
    messages_plan = messages[0] if messages else None
    conversation_ask = PageAsk(tuple(columns.names), summary=summary.ask())
    messages_ask = None if messages_plan is None else messages_plan[1].ask()
    cursors = messages_plan is not None and messages_plan[1].cursors

    async def run(ctx: Context, variables: VariableValues) -> Any:
        args = _arguments(field, nodes[0], variables)
        window: dict[str, Any] | None = None
        if messages_plan is not None:
            message_args = _arguments(message_field, messages_plan[0], variables)
            window = {key: message_args.get(key) for key in ("first", "after", "last", "before")}
        found = await compiled_resolvers.conversation(
            ctx, conversation_ask, messages_ask, cursors, args["id"], window
        )
        if found is None:
            return None
        row, page = found
        return render((*row, page))

    return run


def _page_renderer(layout: Layout, plan: _Connection) -> Getter:
    index, render = layout["p:messages"], plan.bind()
    return lambda row: render(row[index])


def _me_root(op: _Operation, root: GraphQLObjectType, nodes: list[FieldNode]) -> RootRun:
    user_type = op.field_type(root, "me")
    columns = _Columns("n:")
    render = _node(op, user_type, nodes, columns, None)(_layout(columns, None))
    names = tuple(columns.names)

    async def run(ctx: Context, variables: VariableValues) -> Any:
        user = await ctx.user()
        return render(tuple(getattr(user, name) for name in names))

    return run


_ROOTS = {
    "me": _me_root,
    "conversations": _list_root,
    "tasks": _list_root,
    "conversation": _conversation_root,
}


@dataclass(frozen=True, slots=True)
class Plan:
    roots: tuple[tuple[str, RootRun | str], ...]

    async def run(self, ctx: Context, variables: VariableValues) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key, root in self.roots:
            data[key] = root if isinstance(root, str) else await root(ctx, variables)
        return data


def plan_operation(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    directive_values: Mapping[str, Any],
) -> Plan:
    """The plan of a validated query operation; `Uncompilable` if it is not covered."""
    root = schema.query_type
    if root is None or operation.operation.value != "query":
        raise Uncompilable("not a query")
    op = _Operation(schema, fragments, directive_values)
    roots: list[tuple[str, RootRun | str]] = []
    for key, nodes in collect(root, [operation.selection_set], fragments, directive_values).items():
        name = nodes[0].name.value
        if name == "__typename":
            roots.append((key, root.name))
        elif name in _ROOTS:
            roots.append((key, _ROOTS[name](op, root, nodes)))
        else:
            raise Uncompilable(f"Query.{name}")
    return Plan(tuple(roots))
