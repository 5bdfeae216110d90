"""Request bodies in the OpenAPI description (``/atoll/openapi.json``).

The routes read their bodies themselves (``read_body``: any Content-Type, 400 never 422), so
FastAPI cannot see what they accept. This adds each body's JSON schema to the description, so
readers of the docs, client generators and the fuzz tests know what to send.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from atoll.dialects.openai.wire import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from atoll.wire import ChatRequest, EmbeddingsRequest, EmbedRequest, GenerateRequest, ModelNameRequest

if TYPE_CHECKING:
    from fastapi import FastAPI

#: (method, path) -> the model its body is read into.
REQUEST_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("post", "/api/chat"): ChatRequest,
    ("post", "/api/generate"): GenerateRequest,
    ("post", "/api/show"): ModelNameRequest,
    ("post", "/api/embed"): EmbedRequest,
    ("post", "/api/embeddings"): EmbeddingsRequest,
    ("post", "/v1/chat/completions"): ChatCompletionRequest,
    ("post", "/v1/completions"): CompletionRequest,
    ("post", "/v1/embeddings"): EmbeddingRequest,
}

_REF = "#/components/schemas/{model}"

#: Hot routes served as plain Starlette routes (no FastAPI APIRoute), which FastAPI cannot describe.
PLAIN_ROUTES: dict[tuple[str, str], str] = {
    ("post", "/api/chat"): "Chat with the agent (NDJSON stream unless `stream` is false)",
    ("post", "/api/generate"): "Complete a prompt (NDJSON stream unless `stream` is false)",
    ("post", "/v1/chat/completions"): "OpenAI chat completion (server-sent events when `stream` is true)",
    ("post", "/v1/completions"): "OpenAI text completion (server-sent events when `stream` is true)",
}

_REPLY = {"200": {"description": "The reply: one JSON object, or NDJSON chunks (SSE under /v1) when streaming",
                  "content": {"application/json": {"schema": {"type": "object"}},
                              "application/x-ndjson": {"schema": {"type": "string"}},
                              "text/event-stream": {"schema": {"type": "string"}}}},
          "400": {"description": "Bad request"}, "404": {"description": "Unknown model"}}


def add_plain_routes(schema: dict[str, Any]) -> None:
    """Describe the hot routes FastAPI does not know about, so docs and the fuzzer see them."""
    paths = schema.setdefault("paths", {})
    for (method, path), summary in PLAIN_ROUTES.items():
        paths.setdefault(path, {}).setdefault(method, {"summary": summary, "responses": _REPLY})


def add_request_bodies(schema: dict[str, Any]) -> None:
    """Describe each known body where the route declares none; models' sub-schemas become components."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for (method, path), model in REQUEST_BODIES.items():
        operation = schema.get("paths", {}).get(path, {}).get(method)
        if operation is None or "requestBody" in operation:
            continue
        body = model.model_json_schema(ref_template=_REF)
        components.update(body.pop("$defs", {}))
        components.setdefault(model.__name__, body)
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}}}


def document_request_bodies(app: FastAPI) -> None:
    """Make ``app.openapi()`` include the request bodies (computed once, like FastAPI's own)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            add_plain_routes(schema)
            add_request_bodies(schema)
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]
