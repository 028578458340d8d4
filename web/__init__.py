"""HTTP and WebSocket glue: the GraphQL endpoint, operations endpoints, middleware."""
