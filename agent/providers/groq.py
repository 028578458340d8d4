"""Groq through the official SDK (`AsyncGroq`), streamed or not.

Provider failures are mapped to the contract's codes here: a timeout is
`AGENT_TIMEOUT`; 429, 5xx, connection and key problems are `AGENT_UNAVAILABLE`. The
key never appears in an error or a log line.
"""

from __future__ import annotations

from typing import Any

import groq
import httpx
from groq import AsyncGroq

from agent.providers.base import ChatMessage, DeltaSink, ModelReply, ToolCallRequest, ToolSpec
from core.errors import AgentTimeout, AgentUnavailable
from core.logging import get_logger

log = get_logger("taskchat.agent.groq")

DEFAULT_MODEL = "llama-3.3-70b-versatile"


class GroqProvider:
    name = "groq"

    def __init__(
        self,
        api_key: str,
        *,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        timeout_seconds: float = 30,
    ) -> None:
        self._model = model
        # One retry on a passing fault; the turn's own deadline bounds the total.
        self._client = AsyncGroq(
            api_key=api_key, base_url=base_url, timeout=timeout_seconds, max_retries=1
        )

    async def complete(
        self,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        *,
        on_delta: DeltaSink | None = None,
    ) -> ModelReply:
        try:
            if on_delta is None:
                return await self._complete(messages, tools)
            return await self._stream(messages, tools, on_delta)
        except (groq.APITimeoutError, httpx.TimeoutException):
            raise AgentTimeout() from None
        except groq.APIStatusError as error:
            log.warning("groq answered an error", status=error.status_code)
            raise AgentUnavailable(_reason(error.status_code)) from None
        except groq.APIConnectionError:
            log.warning("groq unreachable")
            raise AgentUnavailable("the model provider is unreachable") from None
        except groq.APIError:
            log.warning("groq answered something unreadable")
            raise AgentUnavailable("the model provider answered unexpectedly") from None
        except httpx.TransportError:
            # the SDK does not wrap errors raised while a stream is being read
            log.warning("groq connection failed mid-stream")
            raise AgentUnavailable("the model provider connection failed") from None

    def _arguments(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> dict[str, Any]:
        arguments: dict[str, Any] = {"model": self._model, "messages": messages}
        if tools:
            arguments["tools"] = tools
            arguments["tool_choice"] = "auto"
        return arguments

    async def _complete(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> ModelReply:
        completion = await self._client.chat.completions.create(**self._arguments(messages, tools))
        message = completion.choices[0].message
        usage = completion.usage
        return ModelReply(
            content=message.content or "",
            tool_calls=[
                ToolCallRequest(call.id, call.function.name, call.function.arguments or "")
                for call in message.tool_calls or []
            ],
            model=completion.model,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    async def _stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec], on_delta: DeltaSink
    ) -> ModelReply:
        stream = await self._client.chat.completions.create(
            **self._arguments(messages, tools), stream=True
        )
        reply = ModelReply(content="", model=self._model)
        texts: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        async with stream:
            async for chunk in stream:
                reply.model = chunk.model or reply.model
                usage = getattr(chunk.x_groq, "usage", None) if chunk.x_groq else None
                if usage is not None:
                    reply.prompt_tokens = usage.prompt_tokens
                    reply.completion_tokens = usage.completion_tokens
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
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

    async def aclose(self) -> None:
        await self._client.close()


def _reason(status: int) -> str:
    if status == 429:
        return "the model provider is rate limiting us; try again shortly"
    if status in (401, 403):
        return "the model provider refused our credentials"
    if status >= 500:
        return "the model provider is having problems"
    return "the model provider refused the request"
