"""The interface between the agent loop and whatever runs tools (MCP servers, child agents).

A :class:`Toolbox` offers :class:`~atoll.messages.ToolSpec` s to the LLM and runs calls by name.
Tool failures are *results* (``is_error=True``) fed back to the LLM, never exceptions that end
the request.
"""

from __future__ import annotations

from typing import Any, Protocol, Self, runtime_checkable

from atoll.messages import ToolResult, ToolSpec


def call_timeout(spec: ToolSpec | None, default: float) -> float:
    """How long one call of a tool may take: the ``timeout`` written in its MCP server's or child
    agent's entry wins, else ``default`` (``[agent] tool_timeout``). The agent loop,
    ``POST /atoll/tools/{name}`` and the tools re-exported over MCP all use this rule."""
    return spec.timeout if spec is not None and spec.timeout is not None else default


@runtime_checkable
class Toolbox(Protocol):
    async def start(self) -> None:
        """Connect. Must return within the configured overall timeout; failures are warnings."""

    def specs(self) -> list[ToolSpec]:
        """The tools on offer now, with names unique across every source."""
        ...

    async def call(self, name: str, arguments: dict[str, Any], *, timeout: float) -> ToolResult:
        """Run one tool. Errors and timeouts come back as ``ToolResult(is_error=True)``."""
        ...

    def status(self) -> dict[str, Any]:
        """Per-source state for ``/atoll/status`` (e.g. ``{"time": {"state": "connected", "tools": 2}}``)."""
        ...

    async def aclose(self) -> None: ...


class ToolboxContext:
    """``async with toolbox:`` starts it and closes it, for any class with ``start``/``aclose``."""

    async def start(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class EmptyToolbox:
    """No tools: the agent is a plain LLM."""

    async def start(self) -> None:
        return None

    def specs(self) -> list[ToolSpec]:
        return []

    async def call(self, name: str, arguments: dict[str, Any], *, timeout: float) -> ToolResult:
        return ToolResult(content=f"unknown tool {name!r}", is_error=True)

    def status(self) -> dict[str, Any]:
        return {}

    async def aclose(self) -> None:
        return None
