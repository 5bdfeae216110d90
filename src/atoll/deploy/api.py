"""The management REST API: agents, their logs, deploys and remote servers.

Errors are ``{"detail": ..., "error_code": ...}`` with 400/404/409 (see ``deploy/errors.py``), and 401
when an admin token is configured and not sent (see ``deploy/middleware.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from atoll.deploy.backend import management_of
from atoll.deploy.errors import BadRequest, ManagementError, limited
from atoll.deploy.metrics import CONTENT_TYPE, scrape
from atoll.deploy.remote import check_all
from atoll.deploy.runner import FAILED, RUNNING

MAX_LOG_LINES = 10_000



def _flag(request: Request, key: str, default: bool) -> bool:
    value = request.query_params.get(key)
    if value is None:
        return default
    return value.lower() in ("1", "true", "yes", "on")


async def health(request: Request) -> JSONResponse:
    agents = await management_of(request).backend.statuses()
    running = sum(1 for a in agents if a["status"] == RUNNING)
    return JSONResponse({"status": "healthy", "timestamp": datetime.now(UTC).isoformat(),
                         "agents": {"total": len(agents), "running": running}})


async def list_agents(request: Request) -> JSONResponse:
    backend = management_of(request).backend
    return JSONResponse({"agents": await backend.statuses(), "problems": backend.problems(),
                         "model_hosts": backend.model_hosts()})


async def get_agent(request: Request) -> JSONResponse:
    return JSONResponse(await management_of(request).backend.status(request.path_params["name"]))


async def start_agent(request: Request) -> JSONResponse:
    backend = management_of(request).backend
    return _after_start(await backend.start(request.path_params["name"], wait=_flag(request, "wait", True)))


async def restart_agent(request: Request) -> JSONResponse:
    backend = management_of(request).backend
    return _after_start(await backend.restart(request.path_params["name"], wait=_flag(request, "wait", True),
                                              graceful=_flag(request, "graceful", True)))


def _after_start(body: dict[str, Any]) -> JSONResponse:
    if body["status"] == FAILED:
        raise ManagementError(f"Agent {body['name']} failed to start: {body['error_message']}",
                              error_code="AGENT_START_FAILED")
    return JSONResponse(body)


async def stop_agent(request: Request) -> JSONResponse:
    return JSONResponse(await management_of(request).backend.stop(request.path_params["name"]))


async def delete_agent(request: Request) -> JSONResponse:
    name = request.path_params["name"]
    await management_of(request).backend.remove(name)
    return JSONResponse({"name": name, "status": "deleted"})


async def agent_logs(request: Request) -> JSONResponse:
    backend = management_of(request).backend
    name = request.path_params["name"]
    if name not in {host["name"] for host in backend.model_hosts()}:  # a model host's logs are here too
        await backend.status(name)  # 404 for an unknown agent before a 400 for its lines
    raw = request.query_params.get("lines", "100")
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= MAX_LOG_LINES:
        raise BadRequest(f"lines must be an integer from 1 to {MAX_LOG_LINES}")
    lines = int(raw)
    return JSONResponse({"name": name, "lines": lines, **await backend.logs(name, lines)})


async def deploy_agent(request: Request) -> JSONResponse:
    backend = management_of(request).backend
    limit = backend.max_package_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 1024 * 1024:
        raise BadRequest(f"upload is larger than {limit} bytes", error_code="PACKAGE_TOO_LARGE")
    try:
        form = await limited(request, limit + 1024 * 1024).form(max_files=1, max_fields=10)
    except ManagementError:
        raise
    except Exception as exc:  # a malformed multipart body is the client's error
        raise BadRequest(f"expected multipart/form-data with a 'file': {exc}") from exc
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise BadRequest("missing 'file' (the agent package, a zip)", error_code="INVALID_PACKAGE")
        data = await upload.read()
        name = form.get("name")
        force = str(form.get("force", "false")).lower() in ("1", "true", "yes", "on")
    finally:
        await form.close()
    result = await backend.deploy(data, name=name if isinstance(name, str) and name else None, force=force)
    return JSONResponse(result)


async def remote(request: Request) -> JSONResponse:
    management = management_of(request)
    statuses = await check_all(management.probes, management.config.remote_servers)
    return JSONResponse({"remote_servers": [s.to_dict() for s in statuses]})


async def metrics(request: Request) -> Response:
    management = management_of(request)
    backend = management.backend
    text = scrape(len(backend.problems()), management.stats, management.started, await backend.agent_metrics())
    return Response(text, media_type=CONTENT_TYPE)


def routes() -> list[Route]:
    return [
        Route("/health", health),
        Route("/agents", list_agents),
        Route("/agents/deploy", deploy_agent, methods=["POST"]),
        Route("/agents/{name}", get_agent),
        Route("/agents/{name}", delete_agent, methods=["DELETE"]),
        Route("/agents/{name}/start", start_agent, methods=["POST"]),
        Route("/agents/{name}/stop", stop_agent, methods=["POST"]),
        Route("/agents/{name}/restart", restart_agent, methods=["POST"]),
        Route("/agents/{name}/logs", agent_logs),
        Route("/remote", remote),
        Route("/metrics", metrics),
    ]
