"""Cross-cutting concerns as schema extensions, one concern (and hook) per module."""
