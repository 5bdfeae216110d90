"""``FrontMiddleware``: the outermost layer of both servers, pure ASGI (streams pass chunk by chunk).

For every HTTP request, in order:

1. a request id (the client's tame ``X-Request-ID`` or a new one) in the scope, in the logging
   context and on the response;
2. the browser checks (``Host`` on loopback, then ``Origin``): 403 before any route runs;
3. body framing: ``Content-Length`` with ``Transfer-Encoding`` is a 400;
4. the server's own ``authorize`` hook (the deployment server's admin token), if any;
5. CORS for allowed origins: preflights are answered here, other answers get the headers;
6. once answered, one access line (raw path, route template, status, time, model, session; none
   for the deployment server's ``X-Atoll-Probe`` health checks) and the server's ``record`` hook
   for metrics, with the method normalised (unknown -> ``OTHER``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atoll.httpkit.body import framing_problem
from atoll.httpkit.browser import BrowserPolicy
from atoll.httpkit.methods import metric_method
from atoll.httpkit.refusal import Refusal
from atoll.httpkit.requests import REQUEST_ID_HEADER, header, logged_path, request_id_of
from atoll.logs import request_id_var
from atoll.net import PROBE_HEADER

access_log = logging.getLogger("atoll.access")

#: ``model`` is near the start of every chat body; a regex over the first chunk avoids parsing JSON twice.
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\\x00-\x1f]{0,200})"')
#: Response headers a page from an allowed origin may read.
EXPOSED_HEADERS = b"X-Session-ID, X-Request-ID"
PREFLIGHT_MAX_AGE = b"600"
_PROBE = PROBE_HEADER.lower().encode()


def json_refusal(scope: Scope, refusal: Refusal) -> Response:
    """``{"error", "detail", "error_code"}``: what Ollama clients and the management API both read."""
    return JSONResponse({"error": refusal.message, "detail": refusal.message, "error_code": refusal.code},
                        status_code=refusal.status, headers=refusal.headers)


Render = Callable[[Scope, Refusal], Response]
Record = Callable[[str, str, int, float], None]
Authorize = Callable[[Scope], Refusal | None]


class _Exchange:
    """What the access line needs from one exchange, gathered as messages pass."""

    __slots__ = ("cors", "head", "request_id", "session", "status")

    def __init__(self, request_id: str, cors: bytes | None) -> None:
        self.request_id = request_id.encode()
        self.cors = cors
        self.status = 500
        self.session = ""
        self.head = b""

    def wrap_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if not self.head and message["type"] == "http.request":
                self.head = message.get("body", b"")[:4096]
            return message
        return wrapped

    def wrap_send(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                headers = []
                for key, value in message.get("headers", []):
                    if key == b"x-session-id":
                        self.session = value.decode("latin-1")
                    # an agent's own request id and CORS headers, relayed by the front door, are replaced
                    if key != REQUEST_ID_HEADER and not (self.cors is not None and key.startswith(b"access-control-")):
                        headers.append((key, value))
                headers.append((REQUEST_ID_HEADER, self.request_id))
                if self.cors is not None:
                    headers += [(b"access-control-allow-origin", self.cors), (b"vary", b"Origin"),
                                (b"access-control-expose-headers", EXPOSED_HEADERS)]
                message = {**message, "headers": headers}
            await send(message)
        return wrapped

    def model(self, scope: Scope) -> str:
        given = scope.get("state", {}).get("model")
        if given:
            return str(given)
        found = _MODEL.search(self.head)
        return found.group(1).decode(errors="replace") if found else ""


class FrontMiddleware:
    def __init__(self, app: ASGIApp, *, policy: BrowserPolicy, route_template: Callable[[Scope], str],
                 record: Record | None = None, authorize: Authorize | None = None,
                 render: Render = json_refusal) -> None:
        self.app = app
        self.policy = policy
        self.route_template = route_template
        self.record = record
        self.authorize = authorize
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        origin = header(scope, b"origin")
        exchange = _Exchange(request_id, origin.encode("latin-1") if origin is not None else None)
        started = time.perf_counter()
        token = request_id_var.set(request_id)
        try:
            await self._dispatch(scope, exchange.wrap_receive(receive), exchange.wrap_send(send), exchange)
        finally:
            self._log(scope, exchange, time.perf_counter() - started, request_id)
            request_id_var.reset(token)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send, exchange: _Exchange) -> None:
        refusal = self.policy.refusal(scope)
        if refusal is not None:
            exchange.cors = None  # nothing about the answer is for that page to read
        else:
            refusal = self._refusal(scope)
        if refusal is not None:
            await self.render(scope, refusal)(scope, receive, send)
        elif exchange.cors is not None and scope["method"] == "OPTIONS" \
                and header(scope, b"access-control-request-method") is not None:
            await _preflight(scope)(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Refusal | None:
        framing = framing_problem(scope)
        if framing is not None:
            return Refusal(framing.status, framing.message, "BAD_FRAMING")
        if self.authorize is not None and scope["method"] != "OPTIONS":
            return self.authorize(scope)
        return None

    def _log(self, scope: Scope, exchange: _Exchange, elapsed: float, request_id: str) -> None:
        method = metric_method(scope["method"])
        route = self.route_template(scope)
        if self.record is not None:
            self.record(method, route, exchange.status, elapsed)
        if not access_log.isEnabledFor(logging.INFO) or (route == "/health" and header(scope, _PROBE) is not None):
            return  # the supervisor's probes: counted by ``record`` above, not logged
        fields: dict[str, Any] = {
            "request_id": request_id, "method": method, "path": logged_path(scope), "route": route,
            "status": exchange.status, "duration_ms": round(elapsed * 1000, 1), "model": exchange.model(scope),
            "session": exchange.session or header(scope, b"x-session-id") or "",
        }
        access_log.info("%s %s %s %.1fms route=%s model=%s session=%s", method, fields["path"], exchange.status,
                        fields["duration_ms"], route, fields["model"] or "-", fields["session"] or "-",
                        extra=fields)


def _preflight(scope: Scope) -> Response:
    """The answer to a CORS preflight from an allowed origin: any method, the headers it asked for."""
    asked = header(scope, b"access-control-request-headers") or ""
    headers = {"Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
               "Access-Control-Max-Age": PREFLIGHT_MAX_AGE.decode()}
    if asked:
        headers["Access-Control-Allow-Headers"] = asked
    return Response("OK", status_code=200, headers=headers, media_type="text/plain")
