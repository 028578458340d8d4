"""The offline agent: ``grammar`` (what a message asks), ``wording`` (how replies read),
``provider`` (the :class:`~agent.providers.base.ModelProvider` tying them together)."""

from agent.providers.offline.grammar import parse_intent
from agent.providers.offline.provider import MODEL_NAME, OfflineProvider
from agent.providers.offline.wording import HINT

__all__ = ["HINT", "MODEL_NAME", "OfflineProvider", "parse_intent"]
