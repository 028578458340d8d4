"""A provider that counts the tokens another one reports (`taskchat_model_tokens_total`)."""

from __future__ import annotations

from agent.providers.base import ChatMessage, DeltaSink, ModelProvider, ModelReply, ToolSpec
from core.metrics import MODEL_TOKENS


class MeteredProvider:
    def __init__(self, inner: ModelProvider, model: str) -> None:
        self._inner = inner
        self._model = model
        self.name = inner.name

    async def complete(
        self,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        *,
        on_delta: DeltaSink | None = None,
        deadline: float | None = None,
    ) -> ModelReply:
        reply = await self._inner.complete(messages, tools, on_delta=on_delta, deadline=deadline)
        # the configured model, not the one the reply names: labels stay bounded; only
        # counts the provider reported (the turn's estimates are in its usage, not here)
        if reply.prompt_tokens is not None:
            MODEL_TOKENS.labels(self.name, self._model, "prompt").inc(reply.prompt_tokens)
        if reply.completion_tokens is not None:
            MODEL_TOKENS.labels(self.name, self._model, "completion").inc(reply.completion_tokens)
        return reply

    async def aclose(self) -> None:
        await self._inner.aclose()
