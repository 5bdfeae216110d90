"""The only place where exceptions become HTTP responses. Every error body is worded in the
request's dialect (:func:`atoll.dialects.error_body_for`): Ollama's ``error`` (what its clients
read) and ``detail`` (what the seed documents), or under ``/v1`` OpenAI's ``{"error": {"message",
"type", "param", "code"}}``, which the OpenAI SDK turns into its exception text."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response

from atoll.dialects import ErrorBody, error_body_for
from atoll.dialects.ollama.render import ollama_error_body
from atoll.errors import AtollError, ModelNotFound, RateLimited

logger = logging.getLogger(__name__)


def retry_after(exc: AtollError) -> dict[str, str] | None:
    return {"Retry-After": str(max(1, round(exc.retry_after)))} if isinstance(exc, RateLimited) else None


def error_response(exc: AtollError, body: ErrorBody = ollama_error_body) -> JSONResponse:
    content = body(exc.message, exc.status)
    if isinstance(exc, ModelNotFound) and exc.served and "detail" in content:
        # Ollama clients compare "error"; people read "detail"
        content["detail"] = f"{exc.message}; this server serves: {', '.join(exc.served)}"
    return JSONResponse(content, status_code=exc.status, headers=retry_after(exc))


def error_reply(path: str, exc: AtollError) -> JSONResponse:
    """``exc`` answered in the dialect of ``path``."""
    return error_response(exc, error_body_for(path))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AtollError)
    async def _atoll(request: Request, exc: AtollError) -> Response:
        if exc.status >= 500:
            logger.error("%s %s failed: %s", request.method, request.url.path, exc)
        return error_reply(request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        message = f"{where}: {first['msg']}" if where else str(first["msg"])
        return error_reply(request.url.path, AtollError(message, status=400))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        path = request.url.path
        if error_body_for(path) is ollama_error_body:  # Ollama answers unknown paths in plain text
            if exc.status_code == 404 and not path.startswith(("/api/sessions", "/atoll")):
                return PlainTextResponse("404 page not found", status_code=404)
            if exc.status_code == 405:
                return PlainTextResponse("405 method not allowed", status_code=405)
        return error_reply(path, AtollError(str(exc.detail), status=exc.status_code))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_reply(request.url.path, AtollError(f"internal error: {type(exc).__name__}: {exc}"))
