"""Request ids, the access log and Prometheus metrics (``GET /metrics``) for the agent server.

The middleware is the outermost layer, so it sees every answer (401, 413, 429 and 504 included),
and it is pure ASGI so streams are not buffered. Each app gets its own ``CollectorRegistry``:
several apps in one process (tests) never share counters. Token and tool counts come from the agent
events of each turn (``runtime.observe_event``); gauges that describe the present
(sessions, MCP servers) are read when Prometheus scrapes.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atoll._version import __version__
from atoll.agent.events import AgentEvent, RunFinished, ToolFinished
from atoll.logs import request_id_var

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.routing import BaseRoute

    from atoll.server.runtime import AgentRuntime

access_log = logging.getLogger("atoll.access")

#: Seconds; agent turns range from milliseconds (cached, scripted) to minutes (tools, big models).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
#: A client's ``X-Request-ID`` is kept only if it is this tame (it goes into logs and headers).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
#: ``model`` is near the start of every chat body; a regex over the first chunk avoids parsing JSON twice.
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\\x00-\x1f]{0,200})"')
#: The route label of paths no route matches, so fuzzers and scanners cannot blow up label cardinality.
UNMATCHED = "<unmatched>"


class ServerMetrics:
    """Every metric of one agent server, in a registry of its own."""

    def __init__(self, runtime: AgentRuntime) -> None:
        self.runtime = runtime
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("atoll_http_requests", "HTTP requests answered, by route template and status.",
                                ["method", "route", "status"], registry=registry)
        self.latency = Histogram("atoll_http_request_duration_seconds", "Time to answer a request, last byte.",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=registry)
        self.tokens = Counter("atoll_tokens", "LLM tokens: in (prompt) and out (completion).",
                              ["direction"], registry=registry)
        self.tool_calls = Counter("atoll_tool_calls", "Tool calls run by the agent, by tool and outcome.",
                                  ["tool", "outcome"], registry=registry)
        self.generations = Gauge("atoll_active_generations", "Agent turns in progress.", registry=registry)
        self.sessions = Gauge("atoll_active_sessions", "Sessions that have not expired.", registry=registry)
        self.mcp_state = Gauge("atoll_mcp_server_state", "1 for the state each MCP server is in.",
                               ["server", "state"], registry=registry)
        self.mcp_tools = Gauge("atoll_mcp_server_tools", "Tools each MCP server offers.", ["server"],
                               registry=registry)
        self.approvals = Gauge("atoll_approvals", "Tool approvals since start: requested, approved, denied, expired.",
                               ["state"], registry=registry)
        self.mcp_restarts = Gauge("atoll_mcp_server_restarts", "Times each MCP server was restarted.", ["server"],
                                  registry=registry)
        Info("atoll_agent", "The agent this server runs.", registry=registry).info({
            "agent": runtime.name, "version": runtime.config.agent.version, "atoll_version": __version__,
            "provider": runtime.provider.name, "model": runtime.provider.model,
        })

    def count_request(self, method: str, route: str, status: int, elapsed: float) -> None:
        """Hot path: the labelled children are looked up once per (method, route, status) and kept."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)

    def observe_event(self, event: AgentEvent) -> None:
        if isinstance(event, RunFinished):
            self.tokens.labels("in").inc(event.usage.prompt_tokens)
            self.tokens.labels("out").inc(event.usage.completion_tokens)
        elif isinstance(event, ToolFinished):
            self.tool_calls.labels(event.call.name, "error" if event.result.is_error else "ok").inc()

    async def refresh(self) -> None:
        """Read the gauges that describe the present, just before a scrape."""
        self.sessions.set(await self.runtime.sessions.active_count())
        self.generations.set(self.runtime.active_generations)
        self.runtime.approvals.listing("")  # drops expired approvals, so they are counted
        for state in ("requested", "approved", "denied", "expired"):
            self.approvals.labels(state).set(self.runtime.approvals.counts[state])
        self.mcp_state.clear()
        for name, status in self.runtime.toolbox.status().items():
            if str(status.get("kind", "")).startswith("agent"):
                continue
            self.mcp_state.labels(name, str(status.get("state", "unknown"))).set(1)
            self.mcp_tools.labels(name).set(float(status.get("tools") or 0))
            self.mcp_restarts.labels(name).set(float(status.get("restarts") or 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RouteTemplates:
    """The path template (``/api/sessions/{session_id}``) a request was routed to, never the raw path.

    Starlette leaves ``route`` in the scope, FastAPI's included routers only ``endpoint``; both are
    looked up once and remembered. Requests answered before routing (401, 413, 429) are matched
    against the routes, and paths no route matches share one label.
    """

    def __init__(self, routes: list[BaseRoute]) -> None:
        self.routes = routes
        self._by_endpoint: dict[Any, str] = {}

    def __call__(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None:
            return str(getattr(route, "path", UNMATCHED))
        endpoint = scope.get("endpoint")
        if endpoint is None:
            matched = next((r for r in self.routes if r.matches(scope)[0] is not Match.NONE), None)
            return str(getattr(matched, "path", UNMATCHED))
        path = self._by_endpoint.get(endpoint)
        if path is None:
            found = next((r for r in self.routes if getattr(r, "endpoint", None) is endpoint), None)
            path = self._by_endpoint[endpoint] = str(getattr(found, "path", UNMATCHED))
        return path


def _request_id(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            given: str = value.decode("latin-1")
            if _REQUEST_ID.match(given):
                return given
            break
    return os.urandom(16).hex()


class _Observed:
    """What the access line needs from one exchange, gathered as messages pass."""

    __slots__ = ("head", "header", "session", "status")

    def __init__(self, request_id: str) -> None:
        self.header = (b"x-request-id", request_id.encode())
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
                headers = list(message.get("headers", []))
                self.session = next((v.decode("latin-1") for k, v in headers if k == b"x-session-id"), "")
                message = {**message, "headers": [*headers, self.header]}
            await send(message)
        return wrapped

    def model(self) -> str:
        found = _MODEL.search(self.head)
        return found.group(1).decode(errors="replace") if found else ""


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServerMetrics, routes: list[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.route_template = RouteTemplates(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        observed = _Observed(request_id)
        started = time.perf_counter()
        token = request_id_var.set(request_id)
        try:
            await self.app(scope, observed.wrap_receive(receive), observed.wrap_send(send))
        finally:
            self._record(scope, observed, time.perf_counter() - started, request_id)
            request_id_var.reset(token)

    def _record(self, scope: Scope, observed: _Observed, elapsed: float, request_id: str) -> None:
        method, route = scope["method"], self.route_template(scope)
        self.metrics.count_request(method, route, observed.status, elapsed)
        if not access_log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "request_id": request_id, "method": method, "path": _logged_path(scope), "route": route,
            "status": observed.status, "duration_ms": round(elapsed * 1000, 1), "model": observed.model(),
            "session": observed.session or _session_header(scope),
        }
        access_log.info("%s %s %s %.1fms route=%s model=%s session=%s", method, fields["path"], observed.status,
                        fields["duration_ms"], route, fields["model"] or "-", fields["session"] or "-",
                        extra=fields)


def _logged_path(scope: Scope) -> str:
    """The path as sent (still percent-encoded), so a ``%0A`` in it cannot start a forged log line."""
    raw: bytes | None = scope.get("raw_path")
    path: str = scope["path"]
    return raw.decode("latin-1") if raw else path.encode("unicode_escape").decode()


def _session_header(scope: Scope) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-session-id"), "")


def install_observability(app: FastAPI, runtime: AgentRuntime) -> None:
    """``GET /metrics`` and the request-id/access-log/metrics middleware; call it after every other
    middleware is added, so this one is the outermost."""
    metrics = ServerMetrics(runtime)
    app.state.metrics = metrics
    runtime.observe_event = metrics.observe_event

    async def scrape(request: Request) -> Response:
        await metrics.refresh()
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics, routes=app.router.routes)
