"""The only place where exceptions become HTTP responses. Every error body carries ``error``
(what Ollama clients read) and ``detail`` (what the seed documents); under ``/v1`` the body is
OpenAI's ``{"error": {"message", "type", "param", "code"}}``, which the OpenAI SDK turns into its
exception text."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response

from atoll.errors import AtollError, ModelNotFound, RateLimited
from atoll.server.openai_wire import openai_error_body
from atoll.wire import error_body

logger = logging.getLogger(__name__)


def _retry_after(exc: AtollError) -> dict[str, str] | None:
    return {"Retry-After": str(max(1, round(exc.retry_after)))} if isinstance(exc, RateLimited) else None


def error_response(exc: AtollError) -> JSONResponse:
    body = error_body(exc.message)
    if isinstance(exc, ModelNotFound) and exc.served:  # Ollama clients compare "error"; people read "detail"
        body["detail"] = f"{exc.message}; this server serves: {', '.join(exc.served)}"
    return JSONResponse(body, status_code=exc.status, headers=_retry_after(exc))


def openai_error_response(exc: AtollError) -> JSONResponse:
    return JSONResponse(openai_error_body(exc.message, exc.status), status_code=exc.status,
                        headers=_retry_after(exc))


def _is_openai(request: Request) -> bool:
    return request.url.path.startswith("/v1/")


def _respond(request: Request, exc: AtollError) -> JSONResponse:
    return openai_error_response(exc) if _is_openai(request) else error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AtollError)
    async def _atoll(request: Request, exc: AtollError) -> Response:
        if exc.status >= 500:
            logger.error("%s %s failed: %s", request.method, request.url.path, exc)
        return _respond(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        message = f"{where}: {first['msg']}" if where else str(first["msg"])
        return _respond(request, AtollError(message, status=400))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_openai(request):
            return openai_error_response(AtollError(str(exc.detail), status=exc.status_code))
        if exc.status_code == 404 and not request.url.path.startswith(("/api/sessions", "/atoll")):
            return PlainTextResponse("404 page not found", status_code=404)
        if exc.status_code == 405:
            return PlainTextResponse("405 method not allowed", status_code=405)
        return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return _respond(request, AtollError(f"internal error: {type(exc).__name__}: {exc}"))
