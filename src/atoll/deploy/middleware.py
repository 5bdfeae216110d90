"""What wraps every request to the deployment server's port: a request id, the admin token check,
request counts for ``/metrics`` and one access log line.

Pure ASGI (not ``BaseHTTPMiddleware``), so front-door streams still pass chunk by chunk. The admin
token guards the management API only: ``GET /health`` stays open for probes, and the front door
(``/`` and ``/api/...``) passes the caller's ``Authorization`` through to the agents, whose own
``api_keys`` decide (see ``front_door.py``).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atoll.deploy.ui.signin import DashboardSessions, cookie_value, is_public, same_origin_problem
from atoll.logs import request_context

access_log = logging.getLogger("atoll.access")

REQUEST_ID_HEADER = b"x-request-id"
#: A caller's request id is kept only if it is this tame (it goes into logs and headers).
_TAME_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
#: The route label of paths no route matches, so scanners cannot blow up label cardinality.
UNMATCHED = "<unmatched>"


def needs_admin_token(method: str, path: str) -> bool:
    """Management endpoints need the token; ``GET /health``, the front door (``/``, ``/api/``, ``/v1/``
    and the per-agent ``/agent/{name}/``: agents check the caller's credentials) and the dashboard's
    page and sign-in (which checks the token itself) do not."""
    if path == "/" or path.startswith(("/api/", "/v1/", "/agent/")) or is_public(method, path):
        return False
    return not (path == "/health" and method in ("GET", "HEAD"))


class AdminToken:
    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def problem(self, authorization: str | None) -> str | None:
        """Why ``authorization`` is refused, or None when it carries the token (constant time)."""
        if self._token is None:
            return None
        if not authorization:
            return "missing admin token: send the header 'Authorization: Bearer <admin token>'"
        scheme, _, presented = authorization.strip().partition(" ")
        given = presented.strip().encode() if scheme.lower() == "bearer" else b""
        return None if hmac.compare_digest(given, self._token) else "invalid admin token"


@dataclass
class RequestStats:
    """Requests answered, by method, route template and status: count and total seconds."""

    counts: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        entry = self.counts.setdefault((method, route, str(status)), [0.0, 0.0])
        entry[0] += 1
        entry[1] += seconds


def route_template(scope: Scope, routes: Iterable[BaseRoute]) -> str:
    for route in routes:
        if route.matches(scope)[0] is not Match.NONE:
            return str(getattr(route, "path", UNMATCHED))
    return UNMATCHED


def request_id_of(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == REQUEST_ID_HEADER:
            given = value.decode("latin-1")
            return given if _TAME_ID.match(given) else uuid.uuid4().hex
    return uuid.uuid4().hex


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)


class DeployMiddleware:
    def __init__(self, app: ASGIApp, *, token: AdminToken, stats: RequestStats,
                 routes: Sequence[BaseRoute], dashboard: DashboardSessions) -> None:
        self.app = app
        self.token = token
        self.dashboard = dashboard
        self.stats = stats
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = [500]

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER]
                message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, request_id.encode())]}
            await send(message)

        started = time.perf_counter()
        with request_context(request_id):
            try:
                await self._dispatch(scope, receive, tagged_send)
            finally:
                self._record(scope, status[0], time.perf_counter() - started, request_id)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token.enabled and needs_admin_token(scope["method"], scope["path"]):
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        """None when the request carries the admin token, or the dashboard's cookie from the
        dashboard's own origin; else the 401 (or 403 for the cookie from elsewhere)."""
        authorization = _header(scope, b"authorization")
        session = cookie_value(scope)
        if authorization is None and self.dashboard.valid(session):
            problem = same_origin_problem(scope)
            if problem is None:
                return None
            return JSONResponse({"detail": problem, "error_code": "FORBIDDEN_ORIGIN"}, status_code=403)
        problem = self.token.problem(authorization)
        if problem is None:
            return None
        return JSONResponse({"detail": problem, "error_code": "UNAUTHORIZED"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    def _record(self, scope: Scope, status: int, elapsed: float, request_id: str) -> None:
        method, route = scope["method"], route_template(scope, self.routes)
        self.stats.observe(method, route, status, elapsed)
        model = str(scope.get("state", {}).get("model") or "")
        fields = {"request_id": request_id, "method": method, "path": scope["path"], "route": route,
                  "status": status, "duration_ms": round(elapsed * 1000, 1), "model": model}
        access_log.info("%s %s %s %.1fms route=%s model=%s", method, scope["path"], status,
                        fields["duration_ms"], route, model or "-", extra=fields)
