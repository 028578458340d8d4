"""The assistant: model providers, the tool registry and the turn loop."""
