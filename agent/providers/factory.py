"""Which provider answers, from the settings."""

from __future__ import annotations

from agent.providers.base import ModelProvider
from agent.providers.groq import GroqProvider
from agent.providers.metered import MeteredProvider
from agent.providers.offline import OfflineProvider
from core.config import ConfigError, Settings


def build_provider(settings: Settings) -> ModelProvider:
    if settings.resolved_agent_provider == "groq":
        if not settings.groq_api_key:
            raise ConfigError("AGENT_PROVIDER=groq needs GROQ_API_KEY")
        groq = GroqProvider(
            settings.groq_api_key,
            model=settings.groq_model,
            fallback_models=settings.groq_fallbacks,
            base_url=settings.groq_base_url,
            timeout_seconds=settings.agent_timeout_seconds,
        )
        return MeteredProvider(groq, settings.groq_model)
    return MeteredProvider(OfflineProvider(), "offline")
