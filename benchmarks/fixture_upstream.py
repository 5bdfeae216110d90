"""BENCHMARK FIXTURE, not part of atoll: a scripted Ollama-compatible upstream (Starlette + uvicorn).

``benchmarks/bench_gateway.py`` puts atoll, the front door and the LiteLLM proxy in front of it and
compares each against it alone. It answers instantly, so what a benchmark measures is the gateway:

- ``POST /api/chat``: the reply ``You said: <text>`` in a few NDJSON chunks (one per word) and a last
  ``done`` chunk with usage; one JSON object with ``"stream": false``. A last message
  ``/count N`` gets N chunks (the streaming benchmark's long answer).
- ``POST /api/show``, ``GET /api/tags``, ``GET /api/version``: what clients (atoll's Ollama provider,
  LiteLLM) ask before or besides chatting.

    python benchmarks/fixture_upstream.py PORT
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "bench-model"
CREATED = "2026-01-01T00:00:00Z"
USAGE = {"total_duration": 1000, "load_duration": 10, "prompt_eval_count": 5, "prompt_eval_duration": 100,
         "eval_count": 4, "eval_duration": 800}


def _words(body: dict[str, Any]) -> list[str]:
    messages = body.get("messages") or [{}]
    text = str(messages[-1].get("content", ""))
    if text.startswith("/count "):
        count = int(text.split()[1])
        return [f"w{i} " for i in range(1, count + 1)]
    return [f"{word} " for word in f"You said: {text}".split()]


def _chunk(model: str, content: str) -> dict[str, Any]:
    return {"model": model, "created_at": CREATED, "message": {"role": "assistant", "content": content},
            "done": False}


def _last(model: str, content: str = "") -> dict[str, Any]:
    return {"model": model, "created_at": CREATED, "message": {"role": "assistant", "content": content},
            "done": True, "done_reason": "stop", **USAGE}


async def chat(request: Request) -> Response:
    body = await request.json()
    model = str(body.get("model") or MODEL)
    words = _words(body)
    if body.get("stream") is False:
        return JSONResponse(_last(model, "".join(words)))

    async def lines() -> AsyncIterator[bytes]:  # async: a sync iterator would cost a thread hop per chunk
        for word in words:
            yield json.dumps(_chunk(model, word)).encode() + b"\n"
        yield json.dumps(_last(model)).encode() + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def show(request: Request) -> JSONResponse:
    return JSONResponse({
        "modelfile": "", "parameters": "", "template": "{{ .Prompt }}",
        "details": {"format": "gguf", "family": "bench", "parameter_size": "0M", "quantization_level": "Q4_0"},
        "model_info": {"bench.context_length": 4096}, "capabilities": ["completion", "tools"],
    })


async def tags(request: Request) -> JSONResponse:
    return JSONResponse({"models": [{"name": f"{MODEL}:latest", "model": f"{MODEL}:latest",
                                     "modified_at": CREATED, "size": 1, "digest": "0" * 64, "details": {}}]})


async def version(request: Request) -> JSONResponse:
    return JSONResponse({"version": "0.12.0"})


app = Starlette(routes=[
    Route("/api/chat", chat, methods=["POST"]),
    Route("/api/show", show, methods=["POST"]),
    Route("/api/tags", tags),
    Route("/api/version", version),
])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
