"""How well the agent is, told honestly: its LLM backend's reachability and its MCP servers' states.

``/health`` stays 200 while the agent serves (so liveness checks pass), but says ``"degraded"`` with
the reasons when the LLM backend cannot be reached or an MCP server is down; ``/atoll/status`` and
the start-up block say the same.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from atoll.server.runtime import AgentRuntime

#: Seconds a backend check is reused: ``/health`` is polled every few seconds by supervisors.
CHECK_TTL_S = 5.0
CONNECT_TIMEOUT_S = 1.0


@dataclass
class BackendCheck:
    """Whether the LLM backend's address accepts a connection (cached for :data:`CHECK_TTL_S`)."""

    base_url: str | None
    error: str | None = None
    checked: float | None = None

    async def reachable(self) -> bool:
        if self.base_url is None:  # an in-process model
            return True
        now = time.monotonic()
        if self.checked is None or now - self.checked > CHECK_TTL_S:
            self.error = await _connect_error(self.base_url)
            self.checked = now
        return self.error is None


async def _connect_error(base_url: str) -> str | None:
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc) or type(exc).__name__)
        return f"LLM backend {base_url} is unreachable: {reason}"
    writer.close()
    return None


def tool_servers(runtime: AgentRuntime) -> tuple[dict[str, Any], dict[str, Any]]:
    """(MCP servers, child agents) from the toolbox status, each name -> its status."""
    status = runtime.toolbox.status()
    children = {k.removeprefix("agent:"): v for k, v in status.items() if k.startswith("agent:")}
    return {k: v for k, v in status.items() if not k.startswith("agent:")}, children


async def degraded_reasons(runtime: AgentRuntime) -> list[str]:
    reasons = []
    if not await runtime.backend.reachable() and runtime.backend.error:
        reasons.append(runtime.backend.error)
    mcp, _ = tool_servers(runtime)
    reasons += [f"MCP server '{name}' is {s.get('state')}: {s.get('last_error') or 'no reason given'}"
                for name, s in mcp.items() if s.get("state") == "failed"]
    return reasons


def mcp_summary(runtime: AgentRuntime) -> str:
    """``2 of 3 connected, 7 tools (time: command not found: mcp-server-time)``, or ``none``."""
    mcp, _ = tool_servers(runtime)
    enabled = {name: s for name, s in mcp.items() if s.get("state") != "disabled"}
    if not enabled:
        return "none configured"
    up = sum(1 for s in enabled.values() if s.get("state") == "connected")
    text = f"{up} of {len(enabled)} connected, {len(runtime.toolbox.specs())} tools"
    down = [f"{name}: {s.get('last_error') or s.get('state')}" for name, s in enabled.items()
            if s.get("state") != "connected"]
    return text + (f" ({'; '.join(down)}; retried in the background)" if down else "")


def tools_warning(runtime: AgentRuntime) -> str | None:
    """A warning when tools are configured on a model that cannot call them."""
    configured = any(s.enabled for s in runtime.config.mcp_servers.values()) or \
        any(s.enabled for s in runtime.config.sub_agents.values())
    if configured and not runtime.provider.profile.supports_tools:
        return (f"tools are configured but the {runtime.provider.name} model {runtime.provider.model} cannot "
                "call them: its replies are never tool calls (use provider ollama or openai for tools)")
    return None
