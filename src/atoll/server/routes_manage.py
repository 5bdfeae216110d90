"""Ollama's model management, as far as it means anything for an agent.

An agent is defined by its configuration file, not by model files, so:

* ``/api/pull`` of this agent succeeds at once (clients pull before they chat): a short NDJSON
  status stream ending in ``{"status":"success"}``, or that last object with ``stream:false``.
* ``/api/push``, ``/api/create``, ``/api/copy``, ``/api/delete`` and ``POST /api/blobs/...`` are
  refused: 404 ``model 'x' not found`` for a name that is not this agent, else 403 with a message
  saying why. ``HEAD /api/blobs/...`` is always 404: there are no blobs.
* ``/api/status`` reports that no cloud models are offered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import JSONResponse, Response

from atoll.errors import ModelNotFound, NotFound, RequestError
from atoll.server.body import read_body
from atoll.server.context import runtime_of
from atoll.server.runtime import AgentRuntime
from atoll.server.streaming import stream_ndjson
from atoll.wire import ModelNameRequest

router = APIRouter()

FORBIDDEN = 403
_DEFINED_BY_CONFIG = "atoll agents are defined by their agent file, not managed through the API"


class Refused(RequestError):
    status = FORBIDDEN


class CopyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    source: str | None = None
    destination: str | None = None


async def _statuses(*statuses: str) -> AsyncIterator[dict[str, Any]]:
    for status in statuses:
        yield {"status": status}


@router.post("/api/pull")
async def pull(request: Request, runtime: AgentRuntime = Depends(runtime_of)) -> Response:
    body = await read_body(request, ModelNameRequest)
    runtime.check_model(body.requested)
    if body.stream is False:
        return JSONResponse({"status": "success"})
    return await stream_ndjson(_statuses("pulling manifest", "success"))


async def _refuse_for_agent(request: Request, runtime: AgentRuntime, action: str) -> Response:
    body = await read_body(request, ModelNameRequest)
    name = runtime.check_model(body.requested)
    raise Refused(f"cannot {action} '{name}': {_DEFINED_BY_CONFIG}")


@router.post("/api/push")
async def push(request: Request, runtime: AgentRuntime = Depends(runtime_of)) -> Response:
    return await _refuse_for_agent(request, runtime, "push")


@router.delete("/api/delete")
async def delete(request: Request, runtime: AgentRuntime = Depends(runtime_of)) -> Response:
    return await _refuse_for_agent(request, runtime, "delete")


@router.post("/api/create")
async def create(request: Request) -> Response:
    body = await read_body(request, ModelNameRequest)
    if not body.requested:
        raise RequestError("model is required")
    raise Refused(f"cannot create '{body.requested}': {_DEFINED_BY_CONFIG}")


@router.post("/api/copy")
async def copy(request: Request, runtime: AgentRuntime = Depends(runtime_of)) -> Response:
    body = await read_body(request, CopyRequest)
    if not body.source or not body.destination:
        raise RequestError("source and destination are required")
    try:
        runtime.check_model(body.source)
    except ModelNotFound as exc:
        raise NotFound(f'model "{body.source}" not found') from exc
    raise Refused(f"cannot copy '{body.source}': {_DEFINED_BY_CONFIG}")


@router.head("/api/blobs/{digest}")
async def blob_exists(digest: str) -> Response:
    raise NotFound(f'blob "{digest}" not found')


@router.post("/api/blobs/{digest}")
async def upload_blob(digest: str) -> Response:
    raise Refused(f"cannot store blob \"{digest}\": {_DEFINED_BY_CONFIG}")


@router.get("/api/status")
async def status() -> dict[str, Any]:
    return {"cloud": {"disabled": True, "source": "atoll"}}
