"""``/agent/{name}/<path>``: any request to one agent's own API, through the front door.

The agent's name is one URL path segment, percent-decoded (``/agent/Mail%5FBot/health`` is
``Mail_Bot``'s ``/health``); the rest of the path, the query string, the method, the
body and the caller's credentials go to the agent unchanged, so every endpoint an agent serves
(``/atoll/tools``, ``/api/sessions``, ``/metrics``, ``/mcp``, ...) is reachable at one address. The
answer streams back as it comes. ``/agents/...`` (plural) is the management API, not this.
"""

from __future__ import annotations

from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from atoll.deploy.directory import AgentAddress
from atoll.deploy.front_door import target  # one resolver for model names and agent names
from atoll.deploy.relay import error, forward, read_body

PREFIX = "/agent/"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def split(raw_path: str) -> tuple[str, str]:
    """``/agent/<escaped name>/<rest>`` -> (name, ``/<rest>`` still escaped)."""
    escaped, _, rest = raw_path[len(PREFIX):].partition("/")
    return unquote(escaped), "/" + rest


async def relay(request: Request) -> Response:
    raw = request.scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0] or request.url.path
    name, path = split(raw)
    if not name:
        return error(request, 404, "no agent named: use /agent/<name>/<path>")
    request.scope.setdefault("state", {})["model"] = name
    body = await read_body(request)
    if isinstance(body, Response):
        return body
    where = await target(request, name)
    if isinstance(where, Response):
        return where
    prefix = PREFIX + raw[len(PREFIX):].partition("/")[0]
    if isinstance(where, AgentAddress):
        return await forward(request, where.url + path, body, where, f"agent '{name}'", forwarded(request, prefix))
    if where.kind == "agent":  # a remote agent server serves its own API at its root
        return await forward(request, where.url + path, body, where, f"agent '{name}'", forwarded(request, prefix))
    # A remote deployment server's agent: its front door has the same prefix (and adds it to X-Forwarded-Prefix).
    return await forward(request, f"{where.url}{PREFIX}{raw[len(PREFIX):]}", body, where, f"agent '{name}'",
                         forwarded(request, None))


def forwarded(request: Request, prefix: str | None) -> dict[str, str]:
    """Where the caller reached the agent (``X-Forwarded-Proto``/``-Host``/``-Prefix``), so what the
    agent writes its own URLs into (its A2A card) points back through the front door. Values a proxy
    in front of us already set are kept; ``prefix`` is appended to theirs."""
    headers = request.headers
    result = {"X-Forwarded-Proto": headers.get("x-forwarded-proto") or request.url.scheme,
              "X-Forwarded-Host": headers.get("x-forwarded-host") or headers.get("host", "")}
    if prefix is not None:
        result["X-Forwarded-Prefix"] = headers.get("x-forwarded-prefix", "").rstrip("/") + prefix
    return {k: v for k, v in result.items() if v}


def routes() -> list[Route]:
    return [Route("/agent/{name}", relay, methods=METHODS), Route("/agent/{name}/{path:path}", relay, methods=METHODS)]
