"""Embeddings in both dialects: ``/api/embed``, the legacy ``/api/embeddings`` and ``/v1/embeddings``.

All three go through the provider's ``embed``. A provider that cannot embed gives Ollama's
capability error, 400 ``"<model>" does not support embeddings``. ``/v1`` also answers in base64
(little-endian float32), which is what the OpenAI SDK asks for unless told otherwise.
"""

from __future__ import annotations

import base64
import math
import struct
import time
from typing import Any

from fastapi import APIRouter, Depends, Request

from atoll.dialects.openai.wire import EmbeddingObject, EmbeddingRequest
from atoll.errors import RequestError
from atoll.providers.base import EmbeddingsNotSupported
from atoll.server.body import read_body
from atoll.server.context import runtime_of
from atoll.server.runtime import AgentRuntime
from atoll.wire import EmbeddingsRequest, EmbedRequest

router = APIRouter()


def _token_estimate(texts: list[str]) -> int:
    """Providers return vectors only; a whitespace word count stands in for the token count."""
    return sum(len(text.split()) for text in texts)


def _shorten(vector: list[float], dimensions: int | None) -> list[float]:
    """``dimensions`` keeps the first N components and re-normalises, as Ollama does."""
    if dimensions is None or dimensions >= len(vector):
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(sum(x * x for x in head)) or 1.0
    return [x / norm for x in head]


async def embed_texts(runtime: AgentRuntime, model: str, texts: list[str],
                      dimensions: int | None = None) -> list[list[float]]:
    if not texts:
        return []
    if not runtime.provider.profile.supports_embeddings:
        raise EmbeddingsNotSupported(model)
    runtime.require_ready()
    try:
        vectors = await runtime.provider.embed(texts)
    except EmbeddingsNotSupported as exc:
        raise EmbeddingsNotSupported(model) from exc
    return [_shorten(v, dimensions) for v in vectors]


@router.post("/api/embed")
async def embed(request: Request, runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    started = time.perf_counter_ns()
    body = await read_body(request, EmbedRequest)
    model = runtime.check_model(body.model)
    texts = [body.input] if isinstance(body.input, str) and body.input else list(body.input or [])
    vectors = await embed_texts(runtime, model, texts, body.dimensions)
    return {"model": model, "embeddings": vectors, "total_duration": time.perf_counter_ns() - started,
            "load_duration": 0, "prompt_eval_count": _token_estimate(texts)}


@router.post("/api/embeddings")
async def embeddings(request: Request, runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    body = await read_body(request, EmbeddingsRequest)
    model = runtime.check_model(body.model)
    vectors = await embed_texts(runtime, model, [body.prompt] if body.prompt else [])
    return {"embedding": vectors[0] if vectors else []}


def _encoded(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


@router.post("/v1/embeddings")
async def openai_embeddings(request: Request, runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    body = await read_body(request, EmbeddingRequest)
    model = runtime.check_model(body.model)
    texts = body.texts
    if not texts or any(not t for t in texts):
        raise RequestError("invalid input: expected a non-empty string or a list of non-empty strings")
    vectors = await embed_texts(runtime, model, texts, body.dimensions)
    data = [EmbeddingObject(embedding=_encoded(v, body.encoding_format), index=i).model_dump()
            for i, v in enumerate(vectors)]
    tokens = _token_estimate(texts)
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
