"""The one interface every LLM backend implements, and the registry that builds them.

A provider turns a :class:`~atoll.messages.ModelRequest` into a stream of
:class:`~atoll.messages.ModelEvent` ending with exactly one ``Finished``. A non-streamed reply is
the same stream, collected by the caller. Providers map their library's exceptions onto
:mod:`atoll.errors` once, at this boundary.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from atoll.config import env
from atoll.errors import ConfigError, RequestError

if TYPE_CHECKING:
    from atoll.config import LLMConfig
    from atoll.messages import ModelEvent, ModelRequest


@dataclass
class ModelProfile:
    """What the backend model is, as far as we know. Feeds ``/api/show`` and ``/api/tags``."""

    family: str = "agent"
    format: str = "agent"
    parameter_size: str = ""
    quantization_level: str = ""
    context_length: int | None = None
    embedding_length: int | None = None
    supports_tools: bool = True
    supports_embeddings: bool = False
    supports_thinking: bool = False
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class Provider(Protocol):
    name: str  # "ollama", "openai", "local", ...
    model: str  # the model actually in use
    base_url: str | None  # the upstream URL, for messages; None for in-process models
    profile: ModelProfile

    async def start(self) -> None:
        """Load or connect. Called once in the app lifespan before the agent is 'ready'."""

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]: ...

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Embedding vectors, one per text. Raise ``EmbeddingsNotSupported`` if the backend can't."""
        ...

    async def aclose(self) -> None: ...


class EmbeddingsNotSupported(RequestError):
    def __init__(self, model: str) -> None:
        super().__init__(f'"{model}" does not support embeddings')


BUILTIN_PROVIDERS: dict[str, str] = {
    "ollama": "atoll.providers.ollama:OllamaProvider",
    "openai": "atoll.providers.openai_compat:OpenAIProvider",
    "local": "atoll.providers.llamacpp:LlamaCppProvider",
}


#: ``provider = "local"`` when ``ATOLL_MODEL_HOST`` names a model host (``atoll.model_host``).
MODEL_HOST_PROVIDER = "atoll.providers.model_host:ModelHostProvider"


def create_provider(config: LLMConfig) -> Provider:
    """Build the provider named by ``config.provider``.

    ``provider`` is one of :data:`BUILTIN_PROVIDERS` or an import path ``package.module:Class``
    (how tests plug in a scripted LLM, and how users plug in their own backend). The class is
    called with the :class:`~atoll.config.LLMConfig`.
    """
    name = config.provider or "local"
    target = BUILTIN_PROVIDERS.get(name, name)
    if name == "local" and env("ATOLL_MODEL_HOST"):  # set by the deployment server: a shared model host
        target = MODEL_HOST_PROVIDER
    module_name, sep, class_name = target.partition(":")
    if not sep:
        known = ", ".join(sorted(BUILTIN_PROVIDERS))
        raise ConfigError(f"unknown provider {name!r}; expected one of {known} or 'module:Class'",
                          field="llm.provider")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        if name in BUILTIN_PROVIDERS:
            raise
        raise ConfigError(f"cannot import provider {target!r}: {exc}", field="llm.provider") from exc
    provider: Provider = cls(config)
    return provider
