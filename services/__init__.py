"""Use cases. Each takes the session and the acting user explicitly; GraphQL resolvers
and agent tools call the same functions, so there is one code path per write."""
