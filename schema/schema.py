"""The Schema object, with its extensions in the order they must run."""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from graphql import GraphQLError, GraphQLSchema
from strawberry.extensions import DisableIntrospection, MaxTokensLimiter, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from core.config import Settings
from schema.compiled.operations import CompiledOperations
from schema.extensions.error_codes import ErrorCodes
from schema.extensions.limits import DocumentLimits, Limits
from schema.extensions.operation_log import OperationLog
from schema.extensions.parsing import CachedParsing
from schema.extensions.validation import CachedValidation
from schema.mutation import Mutation
from schema.query import Query
from schema.subscription import Subscription
from schema.types import Conversation, Message, Task, User


class TaskchatSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """`ErrorCodes` logs what is unexpected; expected errors are no news."""


def limits_of(settings: Settings) -> Limits:
    return Limits(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_query_aliases,
        max_cost=settings.max_query_cost,
    )


def compiled_operations(schema: GraphQLSchema, settings: Settings) -> CompiledOperations:
    """The plans of `schema`'s hot queries, under the limits normal execution applies."""
    return CompiledOperations(schema, limits_of(settings), settings.max_query_tokens)


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    limits = limits_of(settings)
    hide_suggestions = settings.is_production
    # factories: every operation gets fresh extension instances (the caches are shared)
    extensions: list[Callable[[], SchemaExtension]] = [
        OperationLog,
        lambda: ErrorCodes(hide_suggestions=hide_suggestions),
        lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
        CachedParsing,
        lambda: DocumentLimits(limits),
        CachedValidation,
    ]
    if settings.is_production:
        extensions.append(DisableIntrospection)
    return TaskchatSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[User, Conversation, Message, Task],
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
    )


def print_sdl() -> str:
    return build_schema(Settings(environment="test")).as_str() + "\n"
