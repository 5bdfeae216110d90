"""Variants of the scripted test LLM for capabilities it lacks by default (loaded by server processes)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from atoll.config import LLMConfig
from atoll.messages import ModelEvent, ModelRequest, ThinkingDelta
from tests.support.scripted import ScriptedProvider


class ThinkingProvider(ScriptedProvider):
    """Reasons out loud (a separate thinking stream) before its scripted reply when ``think`` is on."""

    def __init__(self, config: LLMConfig) -> None:
        super().__init__(config)
        self.profile.supports_thinking = True

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        if request.think:
            yield ThinkingDelta("Let me")
            yield ThinkingDelta(" think.")
        async for event in super().stream(request):
            yield event


class NoEmbeddingsProvider(ScriptedProvider):
    """A backend that cannot embed, like a chat-only upstream."""

    def __init__(self, config: LLMConfig) -> None:
        super().__init__(config)
        self.profile.supports_embeddings = False
        self.profile.supports_tools = False
