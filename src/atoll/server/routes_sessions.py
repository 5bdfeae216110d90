"""Session endpoints: the seed's two, plus reading and deleting one session."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from atoll.server.context import caller, runtime_of
from atoll.server.runtime import AgentRuntime

router = APIRouter()


@router.get("/api/sessions")
async def sessions(runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    count = await runtime.sessions.active_count()
    timeout = runtime.sessions.timeout_minutes
    return {"active_sessions": count, "timeout_minutes": int(timeout) if timeout.is_integer() else timeout}


@router.post("/api/sessions/cleanup")
async def cleanup(runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, int]:
    return {"cleaned_sessions": await runtime.sessions.cleanup()}


@router.get("/api/sessions/{session_id}")
async def session(session_id: str, request: Request,
                  runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    record = await runtime.sessions.get(session_id, caller(request))
    return {
        "id": record.id,
        "created_at": record.created,
        "updated_at": record.updated,
        # role and content always; the rest (tool calls, internal: true, ...) only when set
        "messages": [{"role": m.role, "content": m.content} | m.model_dump(exclude_none=True, exclude_defaults=True)
                     for m in record.messages],
    }


@router.delete("/api/sessions/{session_id}", status_code=204)
async def delete_session(session_id: str, request: Request,
                         runtime: AgentRuntime = Depends(runtime_of)) -> Response:
    await runtime.sessions.delete(session_id, caller(request))
    return Response(status_code=204)
