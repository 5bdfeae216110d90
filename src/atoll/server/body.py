"""Reading JSON request bodies the way Ollama does: any Content-Type, clear 400s, never 422."""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from atoll.client_json import parse_json
from atoll.errors import RequestError

Model = TypeVar("Model", bound=BaseModel)


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"invalid request: {where}: {message}" if where else f"invalid request: {message}"


async def read_body(request: Request, model: type[Model], *, allow_empty: bool = False) -> Model:
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return model()
        raise RequestError("missing request body")
    try:
        data = parse_json(raw)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and nesting too deep
        raise RequestError(f"invalid JSON body: {exc}") from exc
    if not isinstance(data, dict):
        raise RequestError("invalid request: the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestError(_describe(exc)) from exc
