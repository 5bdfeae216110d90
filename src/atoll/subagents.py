"""Child agents (``[sub_agents.NAME]``): other atoll servers offered to the LLM as tools.

Each child becomes a tool ``ask_<name>`` with one string parameter ``task``. A call posts the task
to the child's Ollama ``/api/chat`` (``stream: false``) and returns the child's answer. The child
keeps the conversation per session: the ``X-Session-ID`` sent is derived from the parent's own
session and the caller's API key, bound with :func:`bind_parent_session` (so follow-up delegations
in one parent conversation continue the child's conversation, and two keys never share one). A
parent turn without a session gets a child session of its own, used by that turn only; so does a
call with nothing bound.

A child is asked for no tool-activity text (``X-Atoll-Tool-Activity: off``): blocks a child set to
show them would otherwise become part of the parent's tool result, and so of its LLM's context.
The parent shows the child's work as its own tool call.

Delegation loops (A asks B asks A ...) are bounded: each delegation sends
``X-Atoll-Delegation-Depth`` (the depth of the request being served plus one), a server refuses a
request deeper than its ``[server] max_delegation_depth``, and a parent does not delegate past its
own limit: the LLM gets an error result saying so.

Children are health-checked (``GET /health``) at start and then periodically; an unreachable or
failing child gives ``ToolResult(is_error=True)``, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import httpx

from atoll.config import SubAgentConfig
from atoll.errors import RequestError
from atoll.mcp_client.naming import sanitize
from atoll.messages import ToolResult, ToolSpec
from atoll.tools import ToolboxContext

__all__ = ["DELEGATION_HEADER", "SubAgentToolbox", "bind_parent_session", "delegation_depth", "parent_key"]

logger = logging.getLogger(__name__)

#: Seconds between health checks of each child.
HEALTH_INTERVAL = 30.0
#: Timeout of one health check (also bounds how long ``start()`` waits for the first round).
HEALTH_TIMEOUT = 5.0

ChildState = Literal["unknown", "healthy", "unhealthy", "unreachable", "disabled"]

#: Sent with every delegation: how many delegations deep the child's request is (1 for the first).
DELEGATION_HEADER = "X-Atoll-Delegation-Depth"
#: Sent with every delegation: the child's answer carries no tool-activity text (see the module doc).
NO_ACTIVITY = {"X-Atoll-Tool-Activity": "off"}
#: Default of ``[server] max_delegation_depth``.
MAX_DELEGATION_DEPTH = 4


@dataclass(frozen=True)
class _Parent:
    """The turn tool calls run for: whose conversation (``key``) and how deep it is delegated."""

    key: str
    depth: int


#: Set by the conversation around a turn's tool calls; ``None`` outside any turn.
_parent: ContextVar[_Parent | None] = ContextVar("atoll_parent", default=None)


def parent_key() -> str | None:
    """Whose conversation the tool call in progress belongs to (see :func:`bind_parent_session`)."""
    parent = _parent.get()
    return parent.key if parent is not None else None


@contextlib.contextmanager
def bind_parent_session(session_id: str | None, owner: str = "", depth: int = 0) -> Iterator[None]:
    """Run the enclosed tool calls (and the tasks they spawn) on behalf of the session
    ``session_id`` of the API key fingerprint ``owner`` (no session: this turn alone), in a request
    that is itself ``depth`` delegations deep."""
    key = f"{owner}#{session_id}" if session_id is not None else f"turn#{os.urandom(16).hex()}"
    token = _parent.set(_Parent(key, depth))
    try:
        yield
    finally:
        _parent.reset(token)


def delegation_depth(headers: Mapping[str, str], limit: int) -> int:
    """The depth of a request from its :data:`DELEGATION_HEADER` (0 without it); raises
    :class:`~atoll.errors.RequestError` for a malformed value and past ``limit``."""
    raw = headers.get(DELEGATION_HEADER.lower()) or headers.get(DELEGATION_HEADER)
    if raw is None:
        return 0
    if not raw.isascii() or not raw.isdigit() or len(raw) > 3:
        raise RequestError(f"{DELEGATION_HEADER} must be a small non-negative integer")
    depth = int(raw)
    if depth > limit:
        raise RequestError(f"delegation too deep: this request is {depth} delegations deep and this agent "
                           f"accepts at most {limit} (server.max_delegation_depth); is there a loop of agents "
                           "asking each other?", status=508)
    return depth


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

    def session_for(self, parent: _Parent | None) -> str:
        """A stable child session per parent conversation (uuid5 of child and parent); a fresh one
        when no turn is bound."""
        if parent is None:
            return uuid.uuid4().hex
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{self.base_url}#{self.name}#{parent.key}").hex

    def headers(self, session_id: str | None = None, depth: int | None = None) -> dict[str, str]:
        headers = {"X-Session-ID": session_id} if session_id else {}
        if depth is not None:
            headers[DELEGATION_HEADER] = str(depth)
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
        parent = _parent.get()
        depth = (parent.depth if parent is not None else 0) + 1
        if depth > self.max_depth:
            return (f"not delegated to agent {child.name!r}: this request is already {depth - 1} delegations "
                    f"deep, the most this agent allows (server.max_delegation_depth = {self.max_depth}); "
                    "answer without it"), True
        if child.model is None and child.config.model is None:
            child.model = await self._discover_model(child)
        body = {
            "model": child.config.model or child.model or child.name,
            "messages": [{"role": "user", "content": task}],
            "stream": False,
        }
        headers = child.headers(child.session_for(parent), depth) | NO_ACTIVITY
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
