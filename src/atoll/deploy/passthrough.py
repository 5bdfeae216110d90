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
    if isinstance(where, str):
        return await forward(request, where + path, body, None, f"agent '{name}'")
    if where.kind == "agent":  # a remote agent server serves its own API at its root
        return await forward(request, where.url + path, body, where, f"agent '{name}'")
    # A remote deployment server's agent: its front door has the same prefix.
    return await forward(request, f"{where.url}{PREFIX}{raw[len(PREFIX):]}", body, where, f"agent '{name}'")


def routes() -> list[Route]:
    return [Route("/agent/{name}", relay, methods=METHODS), Route("/agent/{name}/{path:path}", relay, methods=METHODS)]
