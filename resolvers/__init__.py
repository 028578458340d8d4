"""Thin resolvers: parse arguments, authorize, call a service or a query, return rows.

They never import Strawberry types; `schema/` maps what they return."""
