"""Pending approvals for dashboards and scripts: ``GET /atoll/approvals`` lists the caller's,
``POST /atoll/approvals/{id}`` decides one. The decision takes effect when the conversation's next
message arrives, as a "yes" or "no" typed in the chat would. Same auth, limits and metrics as every
route (the security middleware covers the whole app); approvals are bound to the caller's key."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from atoll.errors import NotFound, RequestError
from atoll.server.body import read_body
from atoll.server.context import caller, runtime_of
from atoll.server.runtime import AgentRuntime

router = APIRouter()


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    reason: str = Field(default="", max_length=1000)


@router.get("/atoll/approvals")
async def list_approvals(request: Request, runtime: AgentRuntime = Depends(runtime_of)) -> JSONResponse:
    pending = runtime.approvals.listing(caller(request))
    return JSONResponse({"approvals": [p.public() for p in pending]})


@router.post("/atoll/approvals/{approval_id}")
async def decide(approval_id: str, request: Request, runtime: AgentRuntime = Depends(runtime_of)) -> JSONResponse:
    body = await read_body(request, Decision)
    pending = runtime.approvals.get(approval_id, caller(request))
    if pending is None:
        raise NotFound(f"approval {approval_id!r} not found (unknown, expired, or another key's)")
    if pending.state != "pending":
        raise RequestError(f"approval {approval_id!r} was already decided: {pending.state}")
    runtime.approvals.decide(pending, body.approve, by="api", reason=body.reason)
    return JSONResponse(pending.public())
