"""Validation against the schema, cached for small documents, skipped when an earlier
check (the document limits) already refused the operation."""

from __future__ import annotations

from collections.abc import Iterator

from cachetools import LRUCache
from graphql import GraphQLError, GraphQLSchema
from graphql.validation import ASTValidationRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from schema.extensions.parsing import is_cacheable

Rules = tuple[type[ASTValidationRule], ...]

#: by document text: hashing the text is cheaper than hashing the parsed tree
_validated: LRUCache[tuple[GraphQLSchema, str, Rules], list[GraphQLError]] = LRUCache(512)


class CachedValidation(SchemaExtension):
    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if context.pre_execution_errors is None and document is not None:
            schema = context.schema._schema
            rules: Rules = tuple(context.validation_rules)
            query = context.query
            if query is not None and is_cacheable(query):
                key = (schema, query, rules)
                errors = _validated.get(key)
                if errors is None:
                    errors = _validated[key] = validate_document(schema, document, rules)
            else:
                errors = validate_document(schema, document, rules)
            context.pre_execution_errors = errors
        yield
