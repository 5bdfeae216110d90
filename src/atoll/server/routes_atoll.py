"""Health, status and direct tool use (ATOLL's extensions to the Ollama API)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import jsonschema
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from atoll import toolschema
from atoll._version import __version__
from atoll.errors import NotFound, RequestError
from atoll.redact import redact_urls
from atoll.server.body import read_body
from atoll.server.context import runtime_of
from atoll.server.health import degraded_reasons, tool_servers
from atoll.server.runtime import AgentRuntime
from atoll.tools import call_timeout

router = APIRouter()


def _health_timestamp() -> str:
    """RFC 3339 with its zone (``2026-01-02T03:04:05.123456+00:00``), as the deployment server's."""
    return datetime.now(UTC).isoformat()


@router.get("/health")
async def health(runtime: AgentRuntime = Depends(runtime_of)) -> JSONResponse:
    """200 while the agent serves ("healthy", or "degraded" with the reasons), 503 otherwise."""
    status = runtime.state if runtime.state != "stopping" else "unhealthy"
    body: dict[str, Any] = {"status": status, "timestamp": _health_timestamp()}
    if runtime.error:
        body["error"] = runtime.error
    if status == "healthy" and (reasons := await degraded_reasons(runtime)):
        body.update(status="degraded", reasons=reasons)
    return JSONResponse(body, status_code=200 if status == "healthy" else 503)


@router.get("/atoll/status")
async def status(runtime: AgentRuntime = Depends(runtime_of)) -> JSONResponse:
    mcp, children = tool_servers(runtime)
    reasons = await degraded_reasons(runtime) if runtime.state == "healthy" else []
    body = {
        "status": "degraded" if reasons else runtime.state,
        "degraded_reasons": reasons,
        "agent": {"name": runtime.name, "version": runtime.config.agent.version,
                  "description": runtime.config.agent.description,
                  "capabilities": runtime.config.agent.capabilities},
        "atoll_version": __version__,
        "llm": {"provider": runtime.provider.name, "model": runtime.provider.model,
                "base_url": runtime.provider.base_url, "reachable": await runtime.backend.reachable(),
                "error": runtime.backend.error, "calls_tools": runtime.provider.profile.supports_tools},
        "mcp_servers": mcp,
        "sub_agents": children,
        "tools": len(runtime.toolbox.specs()),
        "active_sessions": await runtime.sessions.active_count(),
        "active_generations": runtime.active_generations,
        "uptime_s": round(time.monotonic() - runtime.started_monotonic, 3),
    }
    return JSONResponse(redact_urls(body), status_code=200 if runtime.state == "healthy" else 503)


@router.get("/atoll/tools")
async def list_tools(runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    return {"tools": [{"name": s.name, "description": s.description, "input_schema": s.parameters,
                       "source": s.source} for s in runtime.toolbox.specs()]}


class ToolInvocation(BaseModel):
    model_config = ConfigDict(extra="allow")
    arguments: dict[str, Any] = Field(default_factory=dict)

    def shape_problem(self, tool: str) -> str | None:
        """The likely mistake of sending the arguments themselves as the body."""
        stray = sorted(self.model_extra or {})
        if not stray or "arguments" in self.model_fields_set:
            return None
        keys = ", ".join(json.dumps(k) for k in stray)
        inner = ", ".join(f"{json.dumps(k)}: ..." for k in stray)
        return (f'the body must be {{"arguments": {{...}}}}, with the tool\'s arguments inside: got the '
                f'top-level key(s) {keys}; send {{"arguments": {{{inner}}}}} to call \'{tool}\' with them')


@router.post("/atoll/tools/{name}")
async def call_tool(name: str, request: Request, runtime: AgentRuntime = Depends(runtime_of)) -> dict[str, Any]:
    runtime.require_ready()
    spec = next((s for s in runtime.toolbox.specs() if s.name == name), None)
    if spec is None:
        raise NotFound(f"tool '{name}' not found")
    body = await read_body(request, ToolInvocation, allow_empty=True)
    problem = body.shape_problem(name)
    if problem:
        raise RequestError(problem)
    try:
        toolschema.validator(spec.parameters).validate(body.arguments)
    except toolschema.Unresolvable as exc:
        raise RequestError(f"tool '{name}' has an input schema that refers to "
                           f"'{toolschema.external_ref(exc)}'; atoll never fetches schema references, "
                           "so it cannot check these arguments") from exc
    except jsonschema.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or "arguments"
        raise RequestError(f"invalid arguments for tool '{name}': {where}: {exc.message}") from exc
    except jsonschema.SchemaError:
        pass  # a server's sloppy schema is its business; let the server judge the arguments
    started = time.perf_counter()
    result = await runtime.toolbox.call(name, body.arguments,
                                          timeout=call_timeout(spec, runtime.config.agent.tool_timeout))
    return {"tool": name, "source": result.source or spec.source, "result": result.content,
            "is_error": result.is_error,
            "execution_time_ms": round((result.duration_s or time.perf_counter() - started) * 1000, 2)}
