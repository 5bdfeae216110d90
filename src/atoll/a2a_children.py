"""Child agents spoken to over A2A (``[sub_agents.NAME] a2a_url = "https://..."``): any A2A 1.0
agent, atoll's own included, offered to the LLM as a tool ``ask_<name>`` with one ``task``.

At start each child's agent card is fetched (and again while it cannot be), and its description
and skills go into the tool's description, so the LLM knows what to delegate. A call sends one
message (``SendMessage``, waiting for the task to end) in a context kept per parent session, so
follow-up delegations in one conversation continue the child's; the answer is the task's
artifacts (or the message the child sent). Each message carries the delegation headers
(:func:`atoll.delegation.delegation_headers`: its depth, and no tool-activity text), and a parent
does not delegate past its own ``[server] max_delegation_depth``. A child that cannot be reached, or whose task fails,
gives ``ToolResult(is_error=True)``, never an exception. Imported only by agents that have such
children (it loads the A2A SDK).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from a2a.client import A2ACardResolver, A2AClientError, Client, ClientCallContext, ClientConfig, ClientFactory
from a2a.helpers import get_artifact_text, get_message_text
from a2a.types import AgentCard, Message, Part, Role, SendMessageRequest, StreamResponse, TaskState

from atoll.config import SubAgentConfig
from atoll.delegation import MAX_DELEGATION_DEPTH, delegation_headers, parent_key, refusal
from atoll.mcp_client.naming import sanitize
from atoll.messages import ToolResult, ToolSpec
from atoll.tools import ToolboxContext

logger = logging.getLogger(__name__)

#: Seconds to wait for a child's agent card.
CARD_TIMEOUT = 10.0

_TASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"task": {"type": "string", "description": "The task or question for the agent, "
                                                            "with all the context it needs."}},
    "required": ["task"],
}
_FINISHED_WELL = {TaskState.TASK_STATE_COMPLETED}


@dataclass
class _A2AChild:
    name: str
    config: SubAgentConfig
    tool: str
    card: AgentCard | None = None
    last_error: str | None = None
    last_check: float | None = None
    default_context: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def url(self) -> str:
        return str(self.config.a2a_url)

    def context_for(self, parent: str | None) -> str:
        """One A2A context per parent conversation (uuid5 of the child and the parent's key: its
        API key and session, or the turn when it has no session)."""
        return self.default_context if parent is None else uuid.uuid5(
            uuid.NAMESPACE_URL, f"{self.url}#{self.name}#{parent}").hex


class A2AChildToolbox(ToolboxContext):
    def __init__(self, agents: Mapping[str, SubAgentConfig], *, max_depth: int = MAX_DELEGATION_DEPTH) -> None:
        self.max_depth = max_depth
        self._children = {c.tool: c for c in (_A2AChild(name, cfg, sanitize(f"ask_{name}"))
                                               for name, cfg in agents.items() if cfg.enabled)}
        self._http: dict[str, httpx.AsyncClient] = {}
        for child in self._children.values():
            headers = {"Authorization": f"Bearer {child.config.auth_token}"} if child.config.auth_token else {}
            self._http[child.tool] = httpx.AsyncClient(headers=headers, follow_redirects=True,
                                                       timeout=httpx.Timeout(CARD_TIMEOUT, read=None))

    async def start(self) -> None:
        for child in self._children.values():
            await self._client(child)

    async def _client(self, child: _A2AChild) -> Client | None:
        """A client for the child, fetching its card first if not done yet; None (and the reason
        kept) while the card cannot be had."""
        http = self._http[child.tool]
        try:
            if child.card is None:
                child.card = await A2ACardResolver(http, child.url).get_agent_card(
                    http_kwargs={"timeout": CARD_TIMEOUT})
            client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(child.card)
        except (A2AClientError, httpx.HTTPError, ValueError) as exc:
            child.last_error = f"no usable agent card at {child.url}: {_reason(exc)}"
            logger.warning("A2A child agent %r: %s", child.name, child.last_error)
            return None
        finally:
            child.last_check = time.monotonic()
        child.last_error = None
        return client

    def specs(self) -> list[ToolSpec]:
        return [ToolSpec(name=c.tool, description=_description(c), parameters=_TASK_SCHEMA, source=f"agent:{c.name}")
                for c in self._children.values()]

    def status(self) -> dict[str, Any]:
        return {f"agent:{c.name}": {"state": "healthy" if c.last_error is None and c.card else "unreachable",
                                    "url": c.url, "protocol": "a2a", "last_error": c.last_error,
                                    "last_check_age_s": None if c.last_check is None
                                    else round(time.monotonic() - c.last_check, 1)}
                for c in self._children.values()}

    async def call(self, name: str, arguments: dict[str, Any], *, timeout: float) -> ToolResult:
        child = self._children.get(name)
        if child is None:
            return ToolResult(content=f"unknown tool {name!r}", is_error=True)
        task = arguments.get("task")
        source = f"agent:{child.name}"
        if not isinstance(task, str) or not task.strip():
            return ToolResult(content="argument 'task' (a non-empty string) is required", is_error=True, source=source)
        started = time.perf_counter()
        content, is_error = await self._delegate(child, task)
        return ToolResult(content=content, is_error=is_error, source=source, duration_s=time.perf_counter() - started)

    async def _delegate(self, child: _A2AChild, task: str) -> tuple[str, bool]:
        refused = refusal(child.name, self.max_depth)
        if refused is not None:
            return refused, True
        client = await self._client(child)
        if client is None:
            return f"child agent {child.name!r} is unreachable: {child.last_error}", True
        message = Message(role=Role.ROLE_USER, parts=[Part(text=task)], message_id=uuid.uuid4().hex,
                          context_id=child.context_for(parent_key()))
        try:
            context = ClientCallContext(service_parameters=delegation_headers())
            responses = [r async for r in client.send_message(SendMessageRequest(message=message), context=context)]
        except (A2AClientError, httpx.HTTPError) as exc:
            return f"child agent {child.name!r} failed: {_reason(exc)}", True
        finally:
            await client.close()
        return _answer(child.name, responses)

    async def aclose(self) -> None:
        for http in self._http.values():
            await http.aclose()


def _description(child: _A2AChild) -> str:
    card = child.card
    what = child.config.description or (card.description if card else "") or "another agent"
    text = f"Delegate a task to the agent '{child.name}' ({what}) and get its answer."
    if card is not None and card.skills:
        text += " Its skills: " + "; ".join(f"{s.name}: {s.description}" for s in card.skills) + "."
    return text + " It remembers earlier tasks of this conversation."


def _answer(name: str, responses: list[StreamResponse]) -> tuple[str, bool]:
    last = responses[-1] if responses else None
    if last is not None and last.HasField("message"):
        return get_message_text(last.message), False
    if last is None or not last.HasField("task"):
        return f"child agent {name!r} sent no task and no message", True
    task = last.task
    text = "".join(get_artifact_text(a, delimiter="") for a in task.artifacts)
    if task.status.state in _FINISHED_WELL:
        return text, False
    why = get_message_text(task.status.message) if task.status.HasField("message") else ""
    state = TaskState.Name(task.status.state).removeprefix("TASK_STATE_").lower()
    return f"child agent {name!r} ended the task {state}: {why or text or 'no details'}", True


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
