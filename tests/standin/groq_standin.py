"""A local HTTP stand-in for Groq's OpenAI-compatible chat-completions API.

Why: the assistant talks to Groq through the official ``groq`` SDK; pointing that real SDK
at this server (``AsyncGroq(api_key=..., base_url=standin.base_url)``) tests our request
building, response parsing, streaming, retries and error mapping end to end, offline and
deterministically.

Usage::

    with GroqStandIn() as standin:
        standin.script(
            tool_calls(call("create_task", {"title": "Buy milk"})),
            text("Done, I added it."),
        )
        client = AsyncGroq(api_key="test-key", base_url=standin.base_url, max_retries=0)
        ...
        assert standin.last_request.body["model"] == "openai/gpt-oss-120b"

Behaviour in brief:

* Only ``POST /openai/v1/chat/completions`` is served (the path the SDK appends to
  ``base_url``); any other path answers 404, another method 405, both with an
  OpenAI-style error body. Every request, whatever its path, is recorded.
* Each chat-completions request consumes the next scripted step (FIFO). A ``repeat(...)``
  step is never consumed. With nothing scripted the reply is ``default_step``, which is
  ``text("OK.")`` unless a test changes it.
* ``"stream": true`` in the request body turns text / tool-call steps into SSE
  ``chat.completion.chunk`` events ending with ``data: [DONE]``; usage is sent on the
  last chunk under ``x_groq.usage`` (as Groq does) and also as top-level ``usage`` when
  the request asks for ``stream_options.include_usage``.
* ``GET /openai/v1/models`` lists ``standin.models``. A chat request for a model in
  ``standin.decommissioned`` answers 400 ``model_decommissioned``; with
  ``standin.strict_models`` a model not in ``standin.models`` answers 404
  ``model_not_found``, as Groq does. Neither consumes a step.
* A step's ``reasoning`` is sent as the assistant message's ``reasoning`` field (streamed:
  ``delta.reasoning`` chunks before the content), as Groq's gpt-oss models do.
* When ``expected_api_key`` is set, a request whose ``Authorization`` header is not
  ``Bearer <expected_api_key>`` answers 401 without consuming a step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = [
    "CHAT_COMPLETIONS_PATH",
    "CURRENT_MODELS",
    "DECOMMISSIONED_MODELS",
    "MODELS_PATH",
    "Error",
    "GroqStandIn",
    "RecordedRequest",
    "Repeat",
    "Slow",
    "Step",
    "Text",
    "ToolCall",
    "ToolCalls",
    "Usage",
    "call",
    "error",
    "repeat",
    "slow",
    "text",
    "tool_calls",
]

CHAT_COMPLETIONS_PATH = "/openai/v1/chat/completions"
"""Path the groq SDK posts chat completions to, relative to ``base_url``."""

MODELS_PATH = "/openai/v1/models"
"""Path the groq SDK lists models at."""

CURRENT_MODELS = (
    "openai/gpt-oss-120b",
    "openai/gpt-oss-20b",
    "qwen/qwen3-32b",
    "meta-llama/llama-4-scout-17b-16e-instruct",
)
"""Models the stand-in lists by default (a sample of what Groq serves today)."""

DECOMMISSIONED_MODELS = frozenset(
    {
        "llama-3.3-70b-versatile",
        "llama-3.1-8b-instant",
        "llama3-70b-8192",
        "llama3-8b-8192",
        "mixtral-8x7b-32768",
        "gemma2-9b-it",
        "llama-3.1-70b-versatile",
    }
)
"""Models Groq switched off; a request for one answers 400 ``model_decommissioned``."""

_ARGUMENT_PIECE = 8
"""Characters of tool-call arguments per streamed chunk; small so arguments always split."""

_DISCONNECTED = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts to report instead of the stand-in's rough word-count estimate."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Sum, as the API reports it."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Text:
    """A final answer (``finish_reason="stop"``); build it with :func:`text`."""

    content: str
    stream_delay: float = 0.0
    usage: Usage | None = None
    reasoning: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call inside a :class:`ToolCalls` step; build it with :func:`call`."""

    name: str
    arguments: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCalls:
    """A reply asking for tool calls (``finish_reason="tool_calls"``); see :func:`tool_calls`."""

    calls: tuple[ToolCall, ...]
    content: str | None = None
    stream_delay: float = 0.0
    usage: Usage | None = None
    reasoning: str | None = None


@dataclass(frozen=True, slots=True)
class Error:
    """An HTTP error reply; build it with :func:`error`."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Slow:
    """Wait ``seconds`` before answering with ``then``; only the one request waits."""

    seconds: float
    then: Step


@dataclass(frozen=True, slots=True)
class Repeat:
    """A step that stays at the head of the queue and answers every request from then on."""

    step: Step


Step = Text | ToolCalls | Error | Slow | Repeat
"""Anything :meth:`GroqStandIn.script` accepts."""


def text(
    content: str,
    *,
    stream_delay: float = 0.0,
    usage: Usage | None = None,
    reasoning: str | None = None,
) -> Text:
    """A final text answer.

    Streamed, the content arrives in word-sized chunks (whitespace kept, so the deltas join
    back to ``content``), with ``stream_delay`` seconds before each content chunk so a test
    can cancel mid-stream. ``usage`` overrides the estimated token counts.
    """
    return Text(content=content, stream_delay=stream_delay, usage=usage, reasoning=reasoning)


def call(name: str, arguments: dict[str, Any] | str, id: str | None = None) -> ToolCall:
    """One tool call: a dict is JSON-encoded, a str is sent verbatim (e.g. malformed JSON).

    Without ``id`` the stand-in assigns ``call_standin_<n>`` (n counts from 1 per reset).
    """
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(name=name, arguments=raw, id=id)


def tool_calls(
    *calls: ToolCall,
    content: str | None = None,
    stream_delay: float = 0.0,
    usage: Usage | None = None,
    reasoning: str | None = None,
) -> ToolCalls:
    """A reply that calls one or more tools (``finish_reason="tool_calls"``).

    Streamed, each call's first chunk carries id, type and name with empty arguments, and
    the arguments follow in several small pieces, as the real API sends them. ``content``
    is optional assistant text sent alongside the calls.
    """
    if not calls:
        raise ValueError("tool_calls() needs at least one call(...)")
    return ToolCalls(
        calls=calls, content=content, stream_delay=stream_delay, usage=usage, reasoning=reasoning
    )


_ERROR_DEFAULTS: dict[int, tuple[str, str, str]] = {
    400: ("invalid_request_error", "invalid_request", "Bad request"),
    401: ("invalid_request_error", "invalid_api_key", "Invalid API Key"),
    403: ("permission_error", "permission_denied", "Permission denied"),
    404: ("invalid_request_error", "unknown_url", "Unknown request URL"),
    413: ("invalid_request_error", "request_too_large", "Request too large"),
    422: ("invalid_request_error", "unprocessable_entity", "Unprocessable entity"),
    429: ("tokens", "rate_limit_exceeded", "Rate limit reached"),
    500: ("internal_server_error", "internal_server_error", "Internal server error"),
    502: ("internal_server_error", "bad_gateway", "Bad gateway"),
    503: ("internal_server_error", "service_unavailable", "Service unavailable"),
}


def _error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """OpenAI-style ``{"error": {...}}`` body with plausible type/code for ``status``."""
    kind, code, default_message = _ERROR_DEFAULTS.get(
        status, ("api_error", f"http_{status}", f"HTTP {status}")
    )
    return {"error": {"message": message or default_message, "type": kind, "code": code}}


def error(
    status: int,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    *,
    message: str | None = None,
) -> Error:
    """An HTTP error reply, e.g. ``error(429, headers={"retry-after": "1"})``.

    Without ``body`` the reply is ``{"error": {"message", "type", "code"}}`` suited to the
    status (``message`` replaces the default text). Note the SDK retries 408/409/429/5xx
    unless the client has ``max_retries=0``, honouring ``retry-after``.
    """
    return Error(
        status=status,
        body=body if body is not None else _error_body(status, message),
        headers=dict(headers or {}),
    )


def slow(seconds: float, then: Step) -> Slow:
    """Answer with ``then`` after ``seconds``; other requests are served meanwhile."""
    return Slow(seconds=seconds, then=then)


def repeat(step: Step) -> Repeat:
    """A step never consumed: it answers every further request until :meth:`reset`."""
    return Repeat(step=step)


# ------------------------------------------------------------------------ records


@dataclass(slots=True)
class RecordedRequest:
    """One request as received, for assertions on what the client actually sent.

    ``headers`` keys are lower-cased; ``body`` is the parsed JSON object (``{}`` when the
    body was empty or not JSON). ``aborted`` becomes true when the client went away
    before the reply was fully written (best effort: noticed on the next write).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    aborted: bool = False

    @property
    def model(self) -> str | None:
        """The requested model name."""
        value = self.body.get("model")
        return value if isinstance(value, str) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages sent."""
        return list(self.body.get("messages") or [])

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tool specs sent (empty when none)."""
        return list(self.body.get("tools") or [])

    @property
    def tool_names(self) -> list[str]:
        """Function names of the tool specs sent, for compact assertions."""
        return [t.get("function", {}).get("name", "") for t in self.tools]

    @property
    def stream(self) -> bool:
        """Whether the client asked for a streamed reply."""
        return bool(self.body.get("stream"))

    @property
    def authorization(self) -> str | None:
        """The raw ``Authorization`` header, e.g. ``"Bearer test-key"``."""
        return self.headers.get("authorization")


# ------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    """Threaded HTTP server that knows its stand-in and can cut open connections on stop."""

    daemon_threads = True

    def __init__(self, standin: GroqStandIn) -> None:
        self.standin = standin
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse-DNS lookup, which can stall offline."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Track the connection so :meth:`close_connections` can end idle keep-alives."""
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection once its handler thread is done with it."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open client connection so handler threads exit promptly."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hang up; report anything else."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (*_DISCONNECTED, TimeoutError)) or self.stopping.is_set():
            return
        super().handle_error(request, client_address)


class _ClientGone(Exception):
    """The client closed the connection (or the stand-in is stopping) mid-reply."""


class _Handler(BaseHTTPRequestHandler):
    """Serves one connection: records each request, then plays the next scripted step."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes; avoid 40 ms stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging; tests assert on ``standin.requests`` instead."""

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # -- request

    def _handle(self) -> None:
        standin = self.server.standin
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: dict[str, Any] = {}
        parse_error: str | None = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError as exc:
                parse_error = f"Request body is not valid JSON: {exc}"
            else:
                if isinstance(parsed, dict):
                    body = parsed
                else:
                    parse_error = "Request body must be a JSON object"
        path = self.path.split("?", 1)[0]
        record = RecordedRequest(
            method=self.command,
            path=path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        standin._record(record)
        try:
            self._dispatch(standin, record, parse_error)
        except _ClientGone:
            record.aborted = True
            self.close_connection = True

    def _dispatch(
        self, standin: GroqStandIn, record: RecordedRequest, parse_error: str | None
    ) -> None:
        if record.path == MODELS_PATH and record.method == "GET":
            if self._authorized(standin):
                self._send_json(200, standin._model_list())
            return
        if record.path != CHAT_COMPLETIONS_PATH:
            self._send_json(404, _error_body(404, f"Unknown request URL: {record.path}"))
            return
        if record.method != "POST":
            self._send_json(405, _error_body(405, f"Method {record.method} not allowed"))
            return
        if not self._authorized(standin):
            return
        if parse_error is not None:
            self._send_json(400, _error_body(400, parse_error))
            return
        model = record.model or ""
        if model in standin.decommissioned:
            message = (
                f"The model `{model}` has been decommissioned and is no longer supported. "
                "Please refer to https://console.groq.com/docs/deprecations for a "
                "recommendation on which model to use instead."
            )
            body = {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "code": "model_decommissioned",
                }
            }
            self._send_json(400, body)
            return
        if standin.strict_models and model not in standin.models:
            message = f"The model `{model}` does not exist or you do not have access to it."
            body = {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "code": "model_not_found",
                }
            }
            self._send_json(404, body)
            return
        self._play(standin._next_step(), record)

    def _authorized(self, standin: GroqStandIn) -> bool:
        expected = standin.expected_api_key
        if expected is not None and self.headers.get("authorization") != f"Bearer {expected}":
            self._send_json(401, _error_body(401))
            return False
        return True

    # -- reply

    def _play(self, step: Step, record: RecordedRequest) -> None:
        while isinstance(step, Slow | Repeat):
            if isinstance(step, Repeat):
                step = step.step
                continue
            self._pause(step.seconds)
            step = step.then
        if isinstance(step, Error):
            self._send_json(step.status, step.body, step.headers)
            return
        reply = _Reply.build(self.server.standin, step, record)
        if record.stream:
            self._stream(reply, step.stream_delay)
        else:
            self._send_json(200, reply.completion(), request_id=reply.request_id)

    def _pause(self, seconds: float) -> None:
        """Sleep this request only; wakes early (and gives up) when the stand-in stops."""
        if seconds > 0 and self.server.stopping.wait(seconds):
            raise _ClientGone

    def _send_json(
        self,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
        request_id: str | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("x-request-id", request_id or self.server.standin._request_id())
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except _DISCONNECTED as exc:
            raise _ClientGone from exc

    def _stream(self, reply: _Reply, delay: float) -> None:
        try:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.send_header("x-request-id", reply.request_id)
            self.end_headers()
            for chunk, delayed in reply.chunks():
                if delayed:
                    self._pause(delay)
                self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
            self._write_chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
        except _DISCONNECTED as exc:
            raise _ClientGone from exc

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))


_WORD = re.compile(r"\s*\S+\s*|\s+")


def _split_words(content: str) -> list[str]:
    """Word-sized pieces that concatenate back to ``content`` exactly."""
    return _WORD.findall(content)


def _count_words(value: Any) -> int:
    """Rough token estimate: whitespace-separated words in any nested strings."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, dict):
        return sum(_count_words(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_words(v) for v in value)
    return 0


@dataclass(slots=True)
class _Reply:
    """One successful answer, renderable as a ChatCompletion or as chunk events."""

    completion_id: str
    request_id: str
    created: int
    model: str
    content: str | None
    calls: list[tuple[str, ToolCall]]
    finish_reason: str
    usage: dict[str, int]
    include_usage: bool
    reasoning: str | None = None

    @classmethod
    def build(cls, standin: GroqStandIn, step: Text | ToolCalls, record: RecordedRequest) -> _Reply:
        if isinstance(step, Text):
            content: str | None = step.content
            calls: list[tuple[str, ToolCall]] = []
            finish = "stop"
        else:
            content = step.content
            calls = [(c.id or standin._call_id(), c) for c in step.calls]
            finish = "tool_calls"
        if step.usage is not None:
            prompt, completion = step.usage.prompt_tokens, step.usage.completion_tokens
        else:
            prompt = max(1, _count_words(record.messages))
            completion = max(
                1, _count_words(content or "") + sum(len(c.arguments) // 4 + 1 for _, c in calls)
            )
        options = record.body.get("stream_options") or {}
        return cls(
            completion_id=standin._completion_id(),
            request_id=standin._request_id(),
            created=int(time.time()),
            model=record.model or "standin-model",
            content=content,
            calls=calls,
            finish_reason=finish,
            usage={
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
            include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
            reasoning=step.reasoning,
        )

    def completion(self) -> dict[str, Any]:
        """The non-streamed ``chat.completion`` object."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning is not None:
            message["reasoning"] = self.reasoning
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for call_id, c in self.calls
            ]
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_standin",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage,
            "x_groq": {"id": self.request_id},
        }

    def _chunk(
        self, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_standin",
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
            **extra,
        }

    def chunks(self) -> list[tuple[dict[str, Any], bool]]:
        """The ``chat.completion.chunk`` events, each paired with "pause before it"."""
        out: list[tuple[dict[str, Any], bool]] = [
            (
                self._chunk({"role": "assistant", "content": ""}, x_groq={"id": self.request_id}),
                False,
            )
        ]
        for piece in _split_words(self.reasoning or ""):
            out.append((self._chunk({"reasoning": piece}), True))
        for piece in _split_words(self.content or ""):
            out.append((self._chunk({"content": piece}), True))
        for index, (call_id, c) in enumerate(self.calls):
            head = {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": ""},
            }
            out.append((self._chunk({"tool_calls": [head]}), True))
            for start in range(0, len(c.arguments), _ARGUMENT_PIECE):
                piece = c.arguments[start : start + _ARGUMENT_PIECE]
                delta = {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                out.append((self._chunk(delta), True))
        extra: dict[str, Any] = {"x_groq": {"id": self.request_id, "usage": self.usage}}
        if self.include_usage:
            extra["usage"] = self.usage
        out.append((self._chunk({}, self.finish_reason, **extra), False))
        return out


# ------------------------------------------------------------------------ stand-in


class GroqStandIn:
    """A scripted, recording Groq chat-completions server on ``127.0.0.1:<free port>``.

    Runs a threaded stdlib HTTP server in a daemon thread (one thread per connection, so
    slow or streaming replies never block other requests). Use it as a context manager or
    call :meth:`start` / :meth:`stop`; a stopped stand-in can be started again (new port).
    """

    def __init__(self, *, expected_api_key: str | None = None) -> None:
        self.expected_api_key: str | None = expected_api_key
        """When set, requests must carry ``Authorization: Bearer <key>`` or get 401."""
        self.default_step: Step = text("OK.")
        """Reply used when the script is empty; kept across :meth:`reset`."""
        self.models: list[str] = list(CURRENT_MODELS)
        """What ``GET /openai/v1/models`` lists; reset by :meth:`reset`."""
        self.decommissioned: set[str] = set(DECOMMISSIONED_MODELS)
        """Models answering 400 ``model_decommissioned``; reset by :meth:`reset`."""
        self.strict_models = False
        """When true, a model not in :attr:`models` answers 404 ``model_not_found``."""
        self._lock = threading.Lock()
        self._queue: list[Step] = []
        self._requests: list[RecordedRequest] = []
        self._counters = {"call": 0, "completion": 0, "request": 0}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> Self:
        """Bind a free port and serve in a background thread; returns ``self``."""
        if self._server is not None:
            return self
        server = _Server(self)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"groq-standin-{server.server_port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving, wake any pending slow replies and close open connections."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, to pass as the SDK's ``base_url``."""
        if self._server is None:
            raise RuntimeError("GroqStandIn is not running; call start() or use `with`")
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def chat_completions_url(self) -> str:
        """Full URL of the chat-completions endpoint, for raw httpx calls."""
        return self.base_url + CHAT_COMPLETIONS_PATH

    # -- scripting

    def script(self, *steps: Step) -> Self:
        """Queue replies; each chat-completions request consumes the next one (FIFO)."""
        with self._lock:
            self._queue.extend(steps)
        return self

    def script_forever(self, step: Step) -> Self:
        """Answer every request after the already-queued steps with ``step`` until reset."""
        return self.script(repeat(step))

    @property
    def pending(self) -> int:
        """Scripted steps not yet consumed (a :func:`repeat` step counts as one)."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Drop the script and the recorded requests, and restart generated ids."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self.models = list(CURRENT_MODELS)
            self.decommissioned = set(DECOMMISSIONED_MODELS)
            self.strict_models = False
            self._counters = dict.fromkeys(self._counters, 0)

    def _next_step(self) -> Step:
        with self._lock:
            if not self._queue:
                return self.default_step
            head = self._queue[0]
            if isinstance(head, Repeat):
                return head.step
            return self._queue.pop(0)

    # -- recording

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received, in arrival order (all paths)."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Snapshot of the requests to the chat-completions endpoint only."""
        return [r for r in self.requests if r.path == CHAT_COMPLETIONS_PATH]

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent request; raises ``LookupError`` when none arrived yet."""
        with self._lock:
            if not self._requests:
                raise LookupError("GroqStandIn has not received any request")
            return self._requests[-1]

    async def wait_for_requests(self, count: int, timeout: float = 2.0) -> list[RecordedRequest]:
        """Wait (without blocking the event loop) until ``count`` requests have arrived.

        Useful when a request is still in flight, e.g. held by :func:`slow`.
        """
        deadline = time.monotonic() + timeout
        while True:
            seen = self.requests
            if len(seen) >= count:
                return seen
            if time.monotonic() >= deadline:
                raise TimeoutError(f"expected {count} requests, got {len(seen)}")
            await asyncio.sleep(0.01)

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(record)

    def _next(self, counter: str) -> int:
        with self._lock:
            self._counters[counter] += 1
            return self._counters[counter]

    def _model_list(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": model,
                    "object": "model",
                    "created": 1754000000,
                    "owned_by": model.split("/", 1)[0] if "/" in model else "Meta",
                    "active": True,
                    "context_window": 131072,
                }
                for model in self.models
            ],
        }

    def _call_id(self) -> str:
        return f"call_standin_{self._next('call')}"

    def _completion_id(self) -> str:
        return f"chatcmpl-standin-{self._next('completion')}"

    def _request_id(self) -> str:
        return f"req_standin_{self._next('request')}"
