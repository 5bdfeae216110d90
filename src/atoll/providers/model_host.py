"""The embedded model served by a model host (``atoll.model_host``) instead of loaded in-process.

An agent with ``provider = "local"`` uses this provider when ``ATOLL_MODEL_HOST`` names a host (the
deployment server sets it, with ``ATOLL_MODEL_HOST_TOKEN_FILE``, for every agent it runs on a model
it hosts). The host speaks Ollama's ``/api/chat``, so this is the ``ollama`` provider pointed at it,
with the agent's own token, and the profile of the local model: the agent shows and behaves as one
on ``provider = "local"`` (no tool calls, embeddings), without ever importing llama.cpp.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from atoll.config import env
from atoll.errors import ConfigError
from atoll.providers.gguf import DEFAULT_N_CTX, profile_for, resolve_model_path
from atoll.providers.ollama import OllamaProvider

if TYPE_CHECKING:
    from atoll.config import LLMConfig


class ModelHostProvider(OllamaProvider):
    name = "local"

    def __init__(self, config: LLMConfig) -> None:
        url = env("ATOLL_MODEL_HOST") or ""
        token = _read_token(env("ATOLL_MODEL_HOST_TOKEN_FILE"))
        model_path = resolve_model_path(config.model_path)
        hosted = config.model_copy(update={"base_url": url, "model": config.model or model_path.stem})
        super().__init__(hosted, headers={"Authorization": f"Bearer {token}"})
        self.model_path = model_path
        self.profile = profile_for(model_path, config.context_length or DEFAULT_N_CTX)


def _read_token(path: str | None) -> str:
    if not path:
        raise ConfigError("ATOLL_MODEL_HOST is set without ATOLL_MODEL_HOST_TOKEN_FILE (the file holding this "
                          "agent's token for the model host)", field="ATOLL_MODEL_HOST_TOKEN_FILE")
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the model host token: {exc.strerror}", path=path,
                          field="ATOLL_MODEL_HOST_TOKEN_FILE") from exc
