"""``CompositeToolbox``: several toolboxes (MCP servers, child agents) seen as one."""

from __future__ import annotations

import logging
from typing import Any

import anyio

from atoll.mcp_client.naming import assign_names
from atoll.messages import ToolResult, ToolSpec
from atoll.tools import Toolbox, ToolboxContext

logger = logging.getLogger(__name__)


class CompositeToolbox(ToolboxContext):
    """Merges the specs of its toolboxes and routes each call to the one that offered the tool.

    Names stay unique: a name offered by two toolboxes becomes ``<source>__<name>`` for both.
    Status entries are merged; toolboxes key them by source (server name, ``agent:<child>``).
    """

    def __init__(self, *toolboxes: Toolbox) -> None:
        self.toolboxes = toolboxes

    async def start(self) -> None:
        async with anyio.create_task_group() as tg:
            for toolbox in self.toolboxes:
                tg.start_soon(toolbox.start)

    def _routes(self) -> tuple[list[ToolSpec], dict[str, tuple[Toolbox, str]]]:
        entries = [(toolbox, spec) for toolbox in self.toolboxes for spec in toolbox.specs()]
        names = assign_names([(spec.source, spec.name) for _, spec in entries])
        specs = [spec.model_copy(update={"name": name}) for name, (_, spec) in zip(names, entries, strict=True)]
        routes = {name: (toolbox, spec.name) for name, (toolbox, spec) in zip(names, entries, strict=True)}
        return specs, routes

    def specs(self) -> list[ToolSpec]:
        return self._routes()[0]

    async def call(self, name: str, arguments: dict[str, Any], *, timeout: float) -> ToolResult:
        route = self._routes()[1].get(name)
        if route is None:
            return ToolResult(content=f"unknown tool {name!r}", is_error=True)
        toolbox, inner = route
        return await toolbox.call(inner, arguments, timeout=timeout)

    def status(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for toolbox in self.toolboxes:
            merged.update(toolbox.status())
        return merged

    async def aclose(self) -> None:
        async with anyio.create_task_group() as tg:
            for toolbox in self.toolboxes:
                tg.start_soon(toolbox.aclose)
