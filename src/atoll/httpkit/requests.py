"""What an access line and a metric need from a request: its id, its path as sent and the route
template it matched."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import Scope

REQUEST_ID_HEADER = b"x-request-id"
#: A client's ``X-Request-ID`` is kept only if it is this tame (it goes into logs and headers).
_TAME_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
#: The route label of paths no route matches, so fuzzers and scanners cannot blow up label cardinality.
UNMATCHED = "<unmatched>"


def header(scope: Scope, name: bytes) -> str | None:
    """The first header called ``name`` (lower case bytes), decoded as latin-1."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def request_id_of(scope: Scope) -> str:
    """The client's ``X-Request-ID`` when it is tame, else a new random one."""
    given = header(scope, REQUEST_ID_HEADER)
    return given if given is not None and _TAME_ID.match(given) else os.urandom(16).hex()


def logged_path(scope: Scope) -> str:
    """The path as sent (still percent-encoded), so a ``%0A`` in it cannot start a forged log line."""
    raw: bytes | None = scope.get("raw_path")
    path: str = scope["path"]
    return raw.decode("latin-1") if raw else path.encode("unicode_escape").decode()


class RouteTemplates:
    """The path template (``/api/sessions/{session_id}``) a request was routed to, never the raw path.

    Starlette leaves ``endpoint`` (and sometimes ``route``) in the scope; the template is looked up
    once per endpoint and remembered. Requests answered before routing (401, 403, 413, 429) are
    matched against the routes, and paths no route matches share one label.
    """

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.routes = routes
        self._by_endpoint: dict[Any, str | None] = {}

    def __call__(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None:
            return str(getattr(route, "path", UNMATCHED))
        endpoint = scope.get("endpoint")
        path = self._by_endpoint.get(endpoint) if endpoint is not None else None
        if path is None and endpoint is not None and endpoint not in self._by_endpoint:
            found = [r for r in self.routes if getattr(r, "endpoint", None) is endpoint]
            # an endpoint serving several paths (one handler for many routes) is matched each time
            path = self._by_endpoint[endpoint] = str(getattr(found[0], "path", UNMATCHED)) \
                if len(found) == 1 else None
        return path if path is not None else self._match(scope)

    def _match(self, scope: Scope) -> str:
        """The full match's template, else the first route whose path matched (a 405), else UNMATCHED."""
        full, partial = _match(self.routes, scope)
        return full or partial or UNMATCHED


def _match(routes: Sequence[BaseRoute], scope: Scope) -> tuple[str | None, str | None]:
    """(full match, first partial match) among ``routes``, looking inside included routers (which
    FastAPI keeps as one entry without a path of its own)."""
    partial = None
    for route in routes:
        path = getattr(route, "path", None)
        if path is None:
            inner = getattr(route, "routes", None) or getattr(getattr(route, "original_router", None), "routes", None)
            full, inner_partial = _match(inner or [], scope)
            if full is not None:
                return full, partial
            partial = partial or inner_partial
            continue
        match = route.matches(scope)[0]
        if match is Match.FULL:
            return str(path), partial
        if match is Match.PARTIAL and partial is None:
            partial = str(path)
    return None, partial
