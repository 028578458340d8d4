"""Structured logs: JSON lines in production, readable lines in development."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import structlog

from core import jsontext


def configure_logging(*, json: bool, level: str = "info") -> None:
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(serializer=json_line)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *_args: _STDERR_LINES,
        # not cached: a second app in one process (tests) may configure it differently
        cache_logger_on_first_use=False,
    )


def json_line(event: dict[str, Any], **options: Any) -> str:
    """An event as one JSON line, by orjson (a third of the standard library's time on
    the line each operation writes), with the renderer's fallback for unknown types."""
    return jsontext.dumps(event, default=options.get("default"))


class _StderrLines:
    """structlog's output: each line to `sys.stderr` as it is when the line is written
    (tests swap it), by one writer for every logger (structlog's PrintLogger would be
    made anew for each line of an uncached logger)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        stream = sys.stderr
        with self._lock:
            stream.write(message + "\n")
            stream.flush()

    log = debug = info = warn = warning = error = err = critical = exception = msg
    fatal = failure = msg


_STDERR_LINES = _StderrLines()


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
