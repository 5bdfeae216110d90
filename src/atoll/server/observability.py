"""Prometheus metrics (``GET /metrics``) for the agent server.

Request ids, access lines and the per-request counts come from the shared outermost layer
(``atoll.httpkit.FrontMiddleware``), which sees every answer (401, 403, 413, 429 and 504 included);
it calls ``ServerMetrics.count_request`` once per request. Each app gets its own ``CollectorRegistry``:
several apps in one process (tests) never share counters. Token and tool counts come from the agent
events of each turn (``runtime.observe_event``); gauges that describe the present
(sessions, MCP servers) are read when Prometheus scrapes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from atoll._version import __version__
from atoll.agent.events import AgentEvent, RunFinished, ToolFinished
from atoll.errors import AtollError
from atoll.httpkit import FrontMiddleware, Refusal, RouteTemplates
from atoll.httpkit.browser import browser_policy
from atoll.server.errors import error_reply

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import Scope

    from atoll.server.runtime import AgentRuntime

#: Seconds; agent turns range from milliseconds (cached, scripted) to minutes (tools, big models).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


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
        self._tokens_in, self._tokens_out = self.tokens.labels("in"), self.tokens.labels("out")
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
            self._tokens_in.inc(event.usage.prompt_tokens)
            self._tokens_out.inc(event.usage.completion_tokens)
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


def _render_refusal(scope: Scope, refusal: Refusal) -> Response:
    return error_reply(scope["path"], AtollError(refusal.message, status=refusal.status))


def install_observability(app: FastAPI, runtime: AgentRuntime) -> None:
    """``GET /metrics`` and the shared front layer (browser checks, request ids, access lines,
    metrics); call it after every other middleware is added, so this one is the outermost."""
    metrics = ServerMetrics(runtime)
    app.state.metrics = metrics
    runtime.observe_event = metrics.observe_event

    async def scrape(request: Request) -> Response:
        await metrics.refresh()
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)
    server = runtime.config.server
    policy = browser_policy(server.cors_origins, server.allowed_hosts, server=f"agent {runtime.name}")
    app.add_middleware(FrontMiddleware, policy=policy, route_template=RouteTemplates(app.router.routes),
                       record=metrics.count_request, render=_render_refusal)
