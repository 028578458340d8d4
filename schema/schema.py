"""The Schema object, with its extensions in the order they must run."""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from core.config import Settings
from schema.extensions.cost import MaxQueryCost
from schema.extensions.error_codes import ErrorCodes
from schema.extensions.operation_log import OperationLog
from schema.extensions.parsing import CachedParsing
from schema.mutation import Mutation
from schema.query import Query
from schema.subscription import Subscription
from schema.types import Conversation, Message, Task, User


class TaskchatSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """`ErrorCodes` logs what is unexpected; expected errors are no news."""


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    # The limiters' rule classes are built once: ValidationCache keys on them, and
    # fresh classes per request would make every request a cache miss.
    limit_rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_query_aliases).validation_rules,
    ]
    # factories: every operation gets fresh extension instances (the caches are shared)
    extensions: list[Callable[[], SchemaExtension]] = [
        OperationLog,
        ErrorCodes,
        lambda: MaxTokensLimiter(max_token_count=settings.max_query_tokens),
        CachedParsing,
        lambda: AddValidationRules(limit_rules),
        lambda: ValidationCache(maxsize=512),
        lambda: MaxQueryCost(settings.max_query_cost),
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
