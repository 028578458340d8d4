"""Model providers: Groq through the official SDK, and the deterministic offline agent."""
