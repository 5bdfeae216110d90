"""What the deployment server adds to the shared HTTP front (``atoll.httpkit``): who may use the
management API, and request counts for ``/metrics``.

The admin token (or the dashboard's sign-in cookie, from the dashboard's own origin) guards the
management API. ``GET /health`` stays open for probes, and the front door (``/``, ``/api/...``,
``/v1/...``, ``/agent/{name}/...``) passes the caller's ``Authorization`` through to the agents,
whose own ``api_keys`` decide (see ``front_door.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.types import Scope

from atoll.deploy.ui.signin import DashboardSessions, cookie_value, is_public, same_origin_problem
from atoll.httpkit import Refusal, TokenSet, header

#: Paths of the front door: relayed to agents, which check the caller's own credentials.
FRONT_DOOR_PREFIXES = ("/api/", "/v1/", "/agent/")


def needs_admin_token(method: str, path: str) -> bool:
    """Management endpoints need the token; ``GET /health``, the front door (``/``, ``/api/``, ``/v1/``,
    ``/mcp`` and the per-agent ``/agent/{name}/``: agents check the caller's credentials) and the
    dashboard's page and sign-in (which checks the token itself) do not."""
    if path in ("/", "/mcp") or path.startswith(FRONT_DOOR_PREFIXES) or is_public(method, path):
        return False
    return not (path == "/health" and method in ("GET", "HEAD"))


class AdminToken:
    def __init__(self, token: str | None) -> None:
        self._tokens = TokenSet([token] if token else [])

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def problem(self, authorization: str | None) -> str | None:
        """Why ``authorization`` is refused, or None when it carries the token (constant time)."""
        if not authorization:
            return "missing admin token: send the header 'Authorization: Bearer <admin token>'"
        return None if self._tokens.match(authorization) else "invalid admin token"


@dataclass
class ManagementGuard:
    """The ``authorize`` hook of the deployment server's ``FrontMiddleware``."""

    token: AdminToken
    dashboard: DashboardSessions

    def authorize(self, scope: Scope) -> Refusal | None:
        """None when the request needs no token, carries the admin token, or the dashboard's cookie
        from the dashboard's own origin; else the 401 (or 403 for the cookie from elsewhere)."""
        if not needs_admin_token(scope["method"], scope["path"]):
            return None
        authorization = header(scope, b"authorization")
        if authorization is None and self.dashboard.valid(cookie_value(scope)):
            problem = same_origin_problem(scope)
            return None if problem is None else Refusal(403, problem, "FORBIDDEN_ORIGIN")
        problem = self.token.problem(authorization)
        if problem is None:
            return None
        return Refusal(401, problem, "UNAUTHORIZED", {"WWW-Authenticate": "Bearer"})


@dataclass
class RequestStats:
    """Requests answered, by method, route template and status: count and total seconds."""

    counts: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        entry = self.counts.setdefault((method, route, str(status)), [0.0, 0.0])
        entry[0] += 1
        entry[1] += seconds
