"""Child agents (``[sub_agents.NAME]``): other atoll servers offered to the LLM as tools.

Each child becomes a tool ``ask_<name>`` with one string parameter ``task``. A call posts the task
to the child's Ollama ``/api/chat`` (``stream: false``) and returns the child's answer. The child
keeps the conversation per session: the ``X-Session-ID`` sent is derived from the parent's own
session and the caller's API key, bound with :func:`atoll.delegation.bind_parent_session` (so follow-up delegations
in one parent conversation continue the child's conversation, and two keys never share one). A
parent turn without a session gets a child session of its own, used by that turn only; so does a
call with nothing bound.

Each delegation sends the headers of :func:`atoll.delegation.delegation_headers` (its depth, and no
tool-activity text from the child), and a parent does not delegate past its own
``[server] max_delegation_depth``: the LLM gets an error result saying so.

Children are health-checked (``GET /health``) at start and then periodically; an unreachable or
failing child gives ``ToolResult(is_error=True)``, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import httpx

from atoll.config import SubAgentConfig
from atoll.delegation import MAX_DELEGATION_DEPTH, delegation_headers, parent_key, refusal
from atoll.mcp_client.naming import sanitize
from atoll.messages import ToolResult, ToolSpec
from atoll.tools import ToolboxContext

__all__ = ["SubAgentToolbox"]

logger = logging.getLogger(__name__)

#: Seconds between health checks of each child.
HEALTH_INTERVAL = 30.0
#: Timeout of one health check (also bounds how long ``start()`` waits for the first round).
HEALTH_TIMEOUT = 5.0

ChildState = Literal["unknown", "healthy", "unhealthy", "unreachable", "disabled"]

_TASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"task": {"type": "string", "description": "The task or question for the agent, "
                                                            "with all the context it needs."}},
    "required": ["task"],
}


@dataclass
class _Child:
    name: str
    config: SubAgentConfig
    tool: str
    state: ChildState = "unknown"
    last_error: str | None = None
    last_check: float | None = None
    model: str | None = None

    @property
    def base_url(self) -> str:
        return (self.config.url or "").rstrip("/")

    def session_for(self, parent: str | None) -> str:
        """A stable child session per parent conversation (uuid5 of child and parent); a fresh one
        when no turn is bound."""
        if parent is None:
            return uuid.uuid4().hex
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{self.base_url}#{self.name}#{parent}").hex

    def headers(self, session_id: str | None = None) -> dict[str, str]:
        headers = {"X-Session-ID": session_id} if session_id else {}
        if self.config.auth_token:
            headers["Authorization"] = f"Bearer {self.config.auth_token}"
        return headers


class SubAgentToolbox(ToolboxContext):
    """Every enabled child agent as a tool; see the module docstring."""

    def __init__(
        self,
        agents: Mapping[str, SubAgentConfig],
        *,
        health_interval: float = HEALTH_INTERVAL,
        max_depth: int = MAX_DELEGATION_DEPTH,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.health_interval = health_interval
        self.max_depth = max_depth
        self._children = {
            name: _Child(name, config, sanitize(f"ask_{name}"), state="unknown" if config.enabled else "disabled")
            for name, config in agents.items()
        }
        self._by_tool = {c.tool: c for c in self._children.values() if c.config.enabled}
        self._http = httpx.AsyncClient(transport=transport, follow_redirects=True)
        self._health_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.check_all()
        if self._by_tool and self._health_task is None:
            self._health_task = asyncio.create_task(self._health_loop(), name="atoll-subagent-health")

    def specs(self) -> list[ToolSpec]:
        return [
            ToolSpec(name=child.tool, description=self._description(child),
                     parameters=_TASK_SCHEMA, source=f"agent:{child.name}",
                     timeout=child.config.timeout if "timeout" in child.config.model_fields_set else None)
            for child in self._by_tool.values()
        ]

    @staticmethod
    def _description(child: _Child) -> str:
        what = child.config.description or "another agent"
        return (f"Delegate a task to the agent '{child.name}' ({what}) and get its answer. "
                "It remembers earlier tasks of this conversation.")

    def status(self) -> dict[str, Any]:
        return {
            f"agent:{child.name}": {
                "state": child.state,
                "url": child.config.url,
                "model": child.model or child.config.model,
                "last_error": child.last_error,
                "last_check_age_s": None if child.last_check is None
                else round(time.monotonic() - child.last_check, 1),
            }
            for child in self._children.values()
        }

    # ---- health ---------------------------------------------------------------------------

    async def check_all(self) -> None:
        async with anyio.create_task_group() as tg:
            for child in self._by_tool.values():
                tg.start_soon(self._check, child)

    async def _health_loop(self) -> None:
        while True:
            await anyio.sleep(self.health_interval)
            try:
                await self.check_all()
            except Exception:  # task top: a checker bug must not stop future checks
                logger.exception("child agent health check failed")

    async def _check(self, child: _Child) -> None:
        before = child.state
        try:
            response = await self._http.get(f"{child.base_url}/health", headers=child.headers(),
                                            timeout=HEALTH_TIMEOUT)
            healthy = response.status_code == 200
            child.state = "healthy" if healthy else "unhealthy"
            child.last_error = None if healthy else f"/health answered HTTP {response.status_code}"
            if healthy and child.model is None and child.config.model is None:
                child.model = await self._discover_model(child)
        except httpx.HTTPError as exc:
            child.state, child.last_error = "unreachable", _describe(exc)
        child.last_check = time.monotonic()
        if child.state != before and child.state != "healthy":
            logger.warning("child agent %r is %s: %s", child.name, child.state, child.last_error)
        elif child.state != before:
            logger.info("child agent %r is healthy", child.name)

    async def _discover_model(self, child: _Child) -> str | None:
        """The child's model name from its ``/api/tags`` (an atoll server lists itself)."""
        try:
            response = await self._http.get(f"{child.base_url}/api/tags", headers=child.headers(),
                                            timeout=HEALTH_TIMEOUT)
            models = response.json().get("models") or []
            return str(models[0].get("name") or models[0]["model"]) if models else None
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            logger.info("child agent %r: no model name from /api/tags: %s", child.name, exc)
            return None

    # ---- calls ----------------------------------------------------------------------------

    async def call(self, name: str, arguments: dict[str, Any], *, timeout: float) -> ToolResult:
        child = self._by_tool.get(name)
        if child is None:
            return ToolResult(content=f"unknown tool {name!r}", is_error=True)
        task = arguments.get("task")
        if not isinstance(task, str) or not task.strip():
            return ToolResult(content="argument 'task' (a non-empty string) is required", is_error=True,
                              source=f"agent:{child.name}")
        started = time.perf_counter()
        content, is_error = await self._delegate(child, task, timeout)
        return ToolResult(content=content, is_error=is_error, source=f"agent:{child.name}",
                          duration_s=time.perf_counter() - started)

    async def _delegate(self, child: _Child, task: str, timeout: float) -> tuple[str, bool]:
        refused = refusal(child.name, self.max_depth)
        if refused is not None:
            return refused, True
        if child.model is None and child.config.model is None:
            child.model = await self._discover_model(child)
        body = {
            "model": child.config.model or child.model or child.name,
            "messages": [{"role": "user", "content": task}],
            "stream": False,
        }
        headers = child.headers(child.session_for(parent_key())) | delegation_headers()
        try:
            response = await self._http.post(f"{child.base_url}/api/chat", json=body, headers=headers,
                                             timeout=timeout)
        except httpx.TimeoutException:
            return f"child agent {child.name!r} did not answer within {timeout:g} s", True
        except httpx.HTTPError as exc:
            child.state, child.last_error = "unreachable", _describe(exc)
            return f"child agent {child.name!r} at {child.config.url} is unreachable: {child.last_error}", True
        return _answer(child.name, response)

    async def aclose(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._health_task = None
        await self._http.aclose()


def _answer(name: str, response: httpx.Response) -> tuple[str, bool]:
    """The assistant's content from an ``/api/chat`` reply, or an error naming what went wrong."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code != 200:
        detail = data.get("error") if isinstance(data, dict) else None
        return f"child agent {name!r} answered HTTP {response.status_code}: {detail or response.text[:500]}", True
    message = data.get("message") if isinstance(data, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        return f"child agent {name!r} sent an answer without message.content: {response.text[:500]}", True
    return content, False


def _describe(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
