"""Session endpoints: the seed's two, plus reading and deleting one session."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from atoll.errors import RequestError
from atoll.server.context import caller, runtime_of
from atoll.server.runtime import AgentRuntime

router = APIRouter()


#: Sessions per page of ``GET /api/sessions``: 20 unless ``limit`` says otherwise, at most 100.
DEFAULT_PAGE, MAX_PAGE = 20, 100


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


@router.get("/api/sessions")
async def sessions(request: Request, runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    """The seed's count and timeout, and a page of the caller's own live sessions, newest first."""
    raw = request.query_params.get("limit", str(DEFAULT_PAGE))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise RequestError(f"limit must be an integer from 1 to {MAX_PAGE}, got {raw[:20]!r}")
    page, next_cursor = await runtime.sessions.page(caller(request), int(raw), request.query_params.get("cursor"))
    count = await runtime.sessions.active_count()
    timeout = runtime.sessions.timeout_minutes
    return {"active_sessions": count, "timeout_minutes": int(timeout) if timeout.is_integer() else timeout,
            "sessions": [{"id": e.id, "created_at": rfc3339(e.created), "updated_at": rfc3339(e.updated),
                          "turns": e.turns} for e in page],
            "next_cursor": next_cursor}


@router.post("/api/sessions/cleanup")
async def cleanup(runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, int]:
    return {"cleaned_sessions": await runtime.sessions.cleanup()}


@router.get("/api/sessions/{session_id}")
async def session(session_id: str, request: Request,
                  runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    record = await runtime.sessions.get(session_id, caller(request))
    return {
        "id": record.id,
        "created_at": rfc3339(record.created),
        "updated_at": rfc3339(record.updated),
        # role and content always; the rest (tool calls, internal: true, ...) only when set
        "messages": [{"role": m.role, "content": m.content} | m.model_dump(exclude_none=True, exclude_defaults=True)
                     for m in record.messages],
    }


@router.delete("/api/sessions/{session_id}", status_code=204)
async def delete_session(session_id: str, request: Request,
                         runtime: AgentRuntime = Depends(runtime_of)) -> Response:
    await runtime.sessions.delete(session_id, caller(request))
    return Response(status_code=204)
