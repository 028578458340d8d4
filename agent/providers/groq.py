"""Groq through the official SDK (`AsyncGroq`), streamed or not.

Provider failures are mapped to the contract's codes here: a timeout is
`AGENT_TIMEOUT`; 429, 5xx, connection and key problems are `AGENT_UNAVAILABLE`. The
key never appears in an error or a log line.

What today's models do, and how it is handled:

* A model Groq switched off (`model_decommissioned`) or does not know
  (`model_not_found`) is logged once, then the next of `GROQ_FALLBACK_MODELS` is tried;
  with none left the turn is `AGENT_UNAVAILABLE`, naming the model and `GROQ_MODEL`.
* `400 tool_use_failed` (the model wrote a tool call the API could not parse, shown in
  `failed_generation`): the step is asked once more, then `AGENT_UNAVAILABLE`.
* 429 / 5xx: one retry, only when the wait (`retry-after`, else `x-ratelimit-reset-*`)
  fits the turn's remaining time; otherwise `AGENT_UNAVAILABLE` at once, a 429 with
  `retryAfter` in seconds. The SDK's own retries are off, so it never sleeps past it.
* Reasoning models (gpt-oss) may send `reasoning` beside the content: it is neither
  shown as the reply's text nor replayed to the model.
* Streamed usage arrives in the last chunk's `x_groq.usage`.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Sequence
from typing import Any

import groq
import httpx
from groq import AsyncGroq

from agent.providers.base import ChatMessage, DeltaSink, ModelReply, ToolCallRequest, ToolSpec
from core.errors import AgentTimeout, AgentUnavailable
from core.logging import get_logger

log = get_logger("taskchat.agent.groq")

#: error codes of a model that cannot answer at all, whatever we send
MODEL_GONE_CODES = frozenset({"model_decommissioned", "model_not_found"})
#: a retry needs at least this much of the turn left besides its wait
_RETRY_HEADROOM_SECONDS = 0.5
#: without a turn deadline, longer waits are not worth it
_MAX_WAIT_SECONDS = 10.0
_DEFAULT_WAIT_SECONDS = 0.5


class _ModelGone(Exception):
    def __init__(self, model: str, code: str) -> None:
        super().__init__(code)
        self.model = model
        self.code = code


class GroqProvider:
    name = "groq"

    def __init__(
        self,
        api_key: str,
        *,
        model: str,
        fallback_models: Sequence[str] = (),
        base_url: str | None = None,
        timeout_seconds: float = 30,
    ) -> None:
        self._models = [model, *(m for m in dict.fromkeys(fallback_models) if m != model)]
        #: models Groq said it does not serve, so they are asked (and logged) only once
        self._gone: dict[str, str] = {}
        # No SDK retries: it would sleep out a long retry-after past the turn's deadline.
        self._client = AsyncGroq(
            api_key=api_key, base_url=base_url, timeout=timeout_seconds, max_retries=0
        )

    @property
    def models(self) -> list[str]:
        """The configured model, then the fallbacks, in the order they are tried."""
        return list(self._models)

    async def complete(
        self,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        *,
        on_delta: DeltaSink | None = None,
        deadline: float | None = None,
    ) -> ModelReply:
        for model in self._models:
            if model in self._gone:
                continue
            try:
                return await self._step(model, messages, tools, on_delta, deadline)
            except _ModelGone as gone:
                self._gone[model] = gone.code
                log.error(
                    "groq does not serve this model; set GROQ_MODEL (or GROQ_FALLBACK_MODELS)",
                    model=model,
                    code=gone.code,
                    next_model=self._next_model(),
                )
        configured = self._models[0]
        reason = (
            f'the model "{configured}" is not served by Groq ({self._gone[configured]}); '
            "set GROQ_MODEL to a model Groq serves"
        )
        if len(self._models) > 1:
            reason += f" (fallbacks tried: {', '.join(self._models[1:])})"
        raise AgentUnavailable(reason)

    def _next_model(self) -> str | None:
        return next((m for m in self._models if m not in self._gone), None)

    async def _step(
        self,
        model: str,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        on_delta: DeltaSink | None,
        deadline: float | None,
    ) -> ModelReply:
        retried_tool_use = retried_fault = False
        while True:
            try:
                return await self._request(model, messages, tools, on_delta)
            except (groq.APITimeoutError, httpx.TimeoutException):
                raise AgentTimeout() from None
            except groq.APIStatusError as error:
                code = _error_code(error)
                if code in MODEL_GONE_CODES:
                    raise _ModelGone(model, code) from None
                if code == "tool_use_failed":
                    log.warning(
                        "groq could not parse the model's tool call",
                        model=model,
                        retried=retried_tool_use,
                        failed_generation_chars=len(_failed_generation(error)),
                    )
                    if retried_tool_use:
                        raise AgentUnavailable(
                            "the model did not produce a valid tool call; try rephrasing"
                        ) from None
                    retried_tool_use = True
                    continue
                status = error.status_code
                log.warning("groq answered an error", status=status, code=code)
                if status != 429 and status < 500:
                    raise AgentUnavailable(_reason(status)) from None
                wait = _wait_of(error.response.headers)
                if not retried_fault and _fits(wait, deadline):
                    retried_fault = True
                    await asyncio.sleep(wait)
                    continue
                if status == 429:
                    raise AgentUnavailable(
                        _reason(status), retry_after=max(1, math.ceil(wait))
                    ) from None
                raise AgentUnavailable(_reason(status)) from None
            except groq.APIConnectionError:
                log.warning("groq unreachable")
                if not retried_fault and _fits(_DEFAULT_WAIT_SECONDS, deadline):
                    retried_fault = True
                    await asyncio.sleep(_DEFAULT_WAIT_SECONDS)
                    continue
                raise AgentUnavailable("the model provider is unreachable") from None
            except groq.APIError:
                log.warning("groq answered something unreadable")
                raise AgentUnavailable("the model provider answered unexpectedly") from None
            except httpx.TransportError:
                # the SDK does not wrap errors raised while a stream is being read; text
                # may have reached the client already, so this is not retried
                log.warning("groq connection failed mid-stream")
                raise AgentUnavailable("the model provider connection failed") from None

    async def _request(
        self,
        model: str,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        on_delta: DeltaSink | None,
    ) -> ModelReply:
        if on_delta is None:
            return await self._complete(model, messages, tools)
        return await self._stream(model, messages, tools, on_delta)

    def _arguments(
        self, model: str, messages: list[ChatMessage], tools: list[ToolSpec]
    ) -> dict[str, Any]:
        arguments: dict[str, Any] = {"model": model, "messages": messages}
        if tools:
            arguments["tools"] = tools
            arguments["tool_choice"] = "auto"
        return arguments

    async def _complete(
        self, model: str, messages: list[ChatMessage], tools: list[ToolSpec]
    ) -> ModelReply:
        completion = await self._client.chat.completions.create(
            **self._arguments(model, messages, tools)
        )
        message = completion.choices[0].message  # `message.reasoning` is deliberately unused
        usage = completion.usage
        return ModelReply(
            content=message.content or "",
            tool_calls=[
                ToolCallRequest(call.id, call.function.name, call.function.arguments or "")
                for call in message.tool_calls or []
            ],
            model=completion.model or model,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
        )

    async def _stream(
        self, model: str, messages: list[ChatMessage], tools: list[ToolSpec], on_delta: DeltaSink
    ) -> ModelReply:
        stream = await self._client.chat.completions.create(
            **self._arguments(model, messages, tools), stream=True
        )
        reply = ModelReply(content="", model=model)
        texts: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        async with stream:
            async for chunk in stream:
                reply.model = chunk.model or reply.model
                usage = getattr(chunk.x_groq, "usage", None) if chunk.x_groq else None
                usage = usage or getattr(chunk, "usage", None)  # stream_options.include_usage
                if usage is not None:
                    reply.prompt_tokens = usage.prompt_tokens
                    reply.completion_tokens = usage.completion_tokens
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta  # `delta.reasoning` is deliberately unused
                if delta.content:
                    texts.append(delta.content)
                    await on_delta(delta.content)
                for part in delta.tool_calls or []:
                    # tool calls arrive in pieces, keyed by index
                    call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
                    if part.id:
                        call["id"] = part.id
                    if part.function is not None:
                        call["name"] += part.function.name or ""
                        call["arguments"] += part.function.arguments or ""
        reply.content = "".join(texts)
        reply.tool_calls = [
            ToolCallRequest(call["id"], call["name"], call["arguments"])
            for _, call in sorted(calls.items())
        ]
        return reply

    async def list_models(self) -> list[str]:
        """The ids the models endpoint lists (for `python main.py check`)."""
        page = await self._client.models.list()
        return [model.id for model in page.data]

    async def aclose(self) -> None:
        await self._client.close()


def _error_body(error: groq.APIStatusError) -> dict[str, Any]:
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        inner: dict[str, Any] = body["error"]
        return inner
    return body if isinstance(body, dict) else {}


def _error_code(error: groq.APIStatusError) -> str | None:
    code = _error_body(error).get("code")
    return code if isinstance(code, str) else None


def _failed_generation(error: groq.APIStatusError) -> str:
    value = _error_body(error).get("failed_generation")
    return value if isinstance(value, str) else ""


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def _duration(text: str) -> float | None:
    """Seconds of a Go-style duration as Groq's `x-ratelimit-reset-*` send it ("1m2.5s")."""
    parts = _DURATION_PART.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)


def _wait_of(headers: httpx.Headers) -> float:
    """How long the provider asks us to wait, in seconds."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                pass
    resets = [
        seconds
        for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        if (value := headers.get(name)) is not None and (seconds := _duration(value)) is not None
    ]
    return max(resets) if resets else _DEFAULT_WAIT_SECONDS


def _fits(wait: float, deadline: float | None) -> bool:
    if deadline is None:
        return wait <= _MAX_WAIT_SECONDS
    remaining = deadline - asyncio.get_running_loop().time()
    return wait + _RETRY_HEADROOM_SECONDS <= remaining


def _reason(status: int) -> str:
    if status == 429:
        return "the model provider is rate limiting us; try again shortly"
    if status in (401, 403):
        return "the model provider refused our credentials"
    if status >= 500:
        return "the model provider is having problems"
    return "the model provider refused the request"
