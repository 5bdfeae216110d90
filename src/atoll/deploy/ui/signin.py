"""Dashboard sign-in: the admin token buys an HttpOnly, SameSite=Strict, expiring session cookie.

The management API accepts either ``Authorization: Bearer <admin token>`` or this cookie. A request
that authenticates by cookie must also carry an ``Origin`` (or, failing that, a ``Referer``) whose
origin is exactly the dashboard's own (scheme, host and port): SameSite does not tell ports apart,
so without this a page on another local port could ride the cookie.

Sessions live in memory (a server restart signs everyone out) and are bounded in number.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.types import Scope

from atoll.httpkit import header

COOKIE_NAME = "atoll_dashboard"
#: How long a sign-in lasts.
SESSION_SECONDS = 12 * 3600
#: Sessions kept at most; signing in past it forgets the oldest.
MAX_SESSIONS = 64
#: Failed sign-ins allowed per client address and window before it must wait.
MAX_FAILURES = 10
FAILURE_WINDOW_S = 60.0


def cookie_value(scope: Scope) -> str | None:
    raw = header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == COOKIE_NAME:
            return value
    return None


def own_origin(scope: Scope) -> str | None:
    """The origin a browser shows for this server: the scheme and the Host header it was reached by."""
    host = header(scope, b"host")
    return f"{scope.get('scheme', 'http')}://{host.lower()}" if host else None


def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme.lower()}://{host.lower()}" + (f":{port}" if port is not None else "")


def same_origin_problem(scope: Scope) -> str | None:
    """Why a cookie-authenticated request is refused for its origin, or None when it is our own."""
    mine = own_origin(scope)
    origin = header(scope, b"origin")
    stated = origin if origin and origin != "null" else None
    if stated is None:
        referer = header(scope, b"referer")
        stated = _origin_of(referer) if referer else None
    else:
        stated = _origin_of(stated)
    if stated is None:
        return "a request signed in by the dashboard cookie must carry Origin or Referer"
    if mine is None or _origin_of(mine) != stated:
        return f"the dashboard cookie is only accepted from the dashboard's own origin, not {stated}"
    return None


class DashboardSessions:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._expiry: dict[str, float] = {}
        self._failures: dict[str, list[float]] = {}

    def create(self) -> str:
        now = self.clock()
        self._expiry = {sid: t for sid, t in self._expiry.items() if t > now}
        while len(self._expiry) >= MAX_SESSIONS:
            del self._expiry[min(self._expiry, key=self._expiry.__getitem__)]
        session_id = secrets.token_urlsafe(32)
        self._expiry[session_id] = now + SESSION_SECONDS
        return session_id

    def valid(self, session_id: str | None) -> bool:
        if not session_id:
            return False
        now = self.clock()
        found = False
        for known, expiry in self._expiry.items():  # compare with every one, in constant time each
            if hmac.compare_digest(known.encode(), session_id.encode()) and expiry > now:
                found = True
        return found

    def revoke(self, session_id: str | None) -> None:
        if session_id:
            self._expiry.pop(session_id, None)

    def throttled(self, client: str) -> bool:
        """True when ``client`` has failed too often lately (checked before the token is compared)."""
        now = self.clock()
        recent = [t for t in self._failures.get(client, []) if now - t < FAILURE_WINDOW_S]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return len(recent) >= MAX_FAILURES

    def failed(self, client: str) -> None:
        if len(self._failures) > 10_000:
            self._failures.clear()
        self._failures.setdefault(client, []).append(self.clock())


def set_cookie_header(session_id: str, *, secure: bool) -> str:
    attrs = [f"{COOKIE_NAME}={session_id}", "Path=/", f"Max-Age={SESSION_SECONDS}", "HttpOnly", "SameSite=Strict"]
    if secure:
        attrs.append("Secure")
    return "; ".join(attrs)


def clear_cookie_header(*, secure: bool) -> str:
    attrs = [f"{COOKIE_NAME}=", "Path=/", "Max-Age=0", "HttpOnly", "SameSite=Strict"]
    if secure:
        attrs.append("Secure")
    return "; ".join(attrs)


def is_public(method: str, path: str) -> bool:
    """The dashboard's page, its assets and sign-in/out need no token (sign-in checks it itself)."""
    if path in ("/ui", "/ui/") or path.startswith("/ui/assets/"):
        return method in ("GET", "HEAD")
    return path == "/ui/session" and method in ("POST", "DELETE")
