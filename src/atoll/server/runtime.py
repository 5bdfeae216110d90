"""Everything one agent server holds while it runs: provider, tools, sessions, readiness."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from atoll.agent.approvals import ApprovalRules, Approvals
from atoll.agent.events import AgentEvent
from atoll.agent.limits import OptionLimits
from atoll.agent.loop import AgentRunner
from atoll.config import AgentConfig
from atoll.errors import ModelNotFound, NotReady, RequestError
from atoll.messages import GenerationOptions
from atoll.model_names import model_key
from atoll.providers.base import Provider, create_provider
from atoll.server.health import BackendCheck
from atoll.sessions import SessionManager, open_store
from atoll.tools import EmptyToolbox, Toolbox

logger = logging.getLogger(__name__)

State = Literal["starting", "healthy", "unhealthy", "stopping"]


def _ignore_event(event: AgentEvent) -> None:
    return None


def _nothing() -> None:
    return None


def build_toolbox(config: AgentConfig) -> Toolbox:
    """MCP servers and child agents, when the agent has any (imported lazily: most agents have none)."""
    parts: list[Toolbox] = []
    servers = {name: s for name, s in config.mcp_servers.items() if s.enabled}
    if servers:
        from atoll.mcp_client import McpToolbox

        parts.append(McpToolbox(servers, connect_timeout=config.server.mcp_connect_timeout,
                                retry_interval=config.server.mcp_retry_interval))
    children = {name: s for name, s in config.sub_agents.items() if s.enabled and s.url}
    if children:
        from atoll.subagents import SubAgentToolbox

        parts.append(SubAgentToolbox(children, max_depth=config.server.max_delegation_depth))
    a2a_children = {name: s for name, s in config.sub_agents.items() if s.enabled and s.a2a_url}
    if a2a_children:
        from atoll.a2a_children import A2AChildToolbox

        parts.append(A2AChildToolbox(a2a_children, max_depth=config.server.max_delegation_depth))
    if not parts:
        return EmptyToolbox()
    if len(parts) == 1:
        return parts[0]
    from atoll.mcp_client import CompositeToolbox

    return CompositeToolbox(*parts)


def approval_rules(config: AgentConfig) -> ApprovalRules:
    by_source: dict[str, bool | list[str]] = {name: s.require_approval for name, s in config.mcp_servers.items()}
    by_source.update({f"agent:{name}": s.require_approval for name, s in config.sub_agents.items()})
    return ApprovalRules(by_source, list(config.agent.require_approval))


class AgentRuntime:
    def __init__(self, config: AgentConfig, *, provider: Provider | None = None,
                 toolbox: Toolbox | None = None) -> None:
        self.config = config
        self.name = config.agent.name
        self.provider = provider or create_provider(config.llm)
        self.toolbox = toolbox or build_toolbox(config)
        self.sessions = SessionManager(open_store(config), config.server.session_timeout_minutes)
        self.approvals = Approvals(approval_rules(config), config.agent.approval_timeout)
        llm = config.llm
        self.runner = AgentRunner(
            self.provider, self.toolbox, system_prompt=llm.system_prompt,
            defaults=GenerationOptions(temperature=llm.temperature, top_p=llm.top_p, max_tokens=llm.max_tokens),
            max_iterations=config.agent.max_iterations, tool_timeout=config.agent.tool_timeout,
            max_repeated_calls=config.agent.max_repeated_calls,
            max_tool_result_chars=config.agent.max_tool_result_chars,
            approvals=self.approvals,
            limits=OptionLimits(max_tokens=llm.max_tokens, context_length=llm.context_length),
        )
        self.backend = BackendCheck(self.provider.base_url)
        #: Called once the provider and the tools are up, before the agent reports healthy
        #: (``atoll --server`` prints its start-up block there, with what really connected).
        self.on_started: Callable[[], None] = _nothing
        self.state: State = "starting"
        self.started_monotonic = time.monotonic()
        self.error: str | None = None
        #: Agent runs in progress; a client that disconnects must bring it back down (``converse``).
        self.active_generations = 0
        #: Sees every agent event of every turn (observability sets it to feed the metrics).
        self.observe_event: Callable[[AgentEvent], None] = _ignore_event
        self.modified_at = datetime.fromtimestamp(config.source.stat().st_mtime, UTC) if config.source \
            else datetime.now(UTC)
        self.digest = self._digest()

    def _digest(self) -> str:
        """A stable 64-hex digest of the agent definition (Ollama clients expect one)."""
        source = self.config.source.read_bytes() if self.config.source else self.name.encode()
        return hashlib.sha256(source + self.provider.model.encode()).hexdigest()

    async def start(self) -> None:
        await self.provider.start()
        await self.toolbox.start()
        await self.backend.reachable()
        self.on_started()
        self.state = "healthy"

    async def aclose(self) -> None:
        self.state = "stopping"
        try:
            await self.toolbox.aclose()
        finally:
            try:
                await self.provider.aclose()
            finally:
                await self.sessions.store.aclose()

    @property
    def model_tag(self) -> str:
        return f"{self.name}:latest"

    def check_model(self, requested: str | None, *, missing_status: int = 400) -> str:
        """The requested name if it names this agent; else the errors Ollama gives."""
        if not requested:
            if missing_status == 404:
                raise ModelNotFound("")
            raise RequestError("model is required")
        if model_key(requested) != model_key(self.name):
            raise ModelNotFound(requested, served=[self.model_tag])
        return requested

    def require_ready(self) -> None:
        if self.state != "healthy":
            raise NotReady(f"Agent not initialized (state: {self.state})")

    @property
    def capabilities(self) -> list[str]:
        caps = ["completion"]
        if self.provider.profile.supports_tools:  # a model that cannot call tools does not get them
            caps.append("tools")
        if self.provider.profile.supports_embeddings:
            caps.append("embedding")
        if self.provider.profile.supports_thinking:
            caps.append("thinking")
        return caps
