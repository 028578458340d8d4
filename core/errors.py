"""taskchat's error types, each carrying its contract code (see API.md, Errors).

They are turned into contract errors in exactly one place: `schema.error_codes`.
"""

from __future__ import annotations

from typing import Any


class TaskchatError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


class Unauthenticated(TaskchatError):
    code = "UNAUTHENTICATED"


class NotFound(TaskchatError):
    code = "NOT_FOUND"

    def __init__(self, what: str = "object") -> None:
        super().__init__(f"{what} not found")


class BadUserInput(TaskchatError):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str, field: str | None = None) -> None:
        if field is not None:
            super().__init__(message, field=field)
        else:
            super().__init__(message)


class RateLimited(TaskchatError):
    code = "RATE_LIMITED"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many messages; retry in {retry_after} s", retryAfter=retry_after)


class QueryTooComplex(TaskchatError):
    code = "QUERY_TOO_COMPLEX"


class AgentTimeout(TaskchatError):
    code = "AGENT_TIMEOUT"

    def __init__(self) -> None:
        super().__init__("the assistant did not answer in time")


class AgentUnavailable(TaskchatError):
    code = "AGENT_UNAVAILABLE"

    def __init__(
        self, reason: str = "the assistant is unavailable right now", retry_after: int | None = None
    ) -> None:
        if retry_after is not None:
            super().__init__(reason, retryAfter=retry_after)
        else:
            super().__init__(reason)


class ServiceUnavailable(TaskchatError):
    code = "SERVICE_UNAVAILABLE"

    #: seconds a client should wait before retrying; the pool reconnects on its own
    RETRY_AFTER = 2

    def __init__(self, retry_after: int = RETRY_AFTER) -> None:
        super().__init__(
            f"the service is unavailable right now; retry in {retry_after} s",
            retryAfter=retry_after,
        )


class ConversationBusy(TaskchatError):
    code = "CONVERSATION_BUSY"

    def __init__(self) -> None:
        super().__init__(
            "a reply is being generated in this conversation; send with onBusy: QUEUE to "
            "wait for it or INTERRUPT to stop it"
        )
