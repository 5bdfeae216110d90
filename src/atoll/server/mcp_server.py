"""The agent as an MCP server (the official SDK's low-level ``Server``), over streamable HTTP at
``/mcp`` or over stdio (``atoll --server --mcp-stdio``).

It offers one tool named after the agent (``message`` + optional ``session_id``): the turn runs
through ``converse`` like any other dialect's, streams as progress notifications and ends with the
answer and its session id. Its request headers count as on the other dialects
(``X-Atoll-Tool-Activity``, ``X-Atoll-Delegation-Depth``), and so does the same in the call's
``_meta`` (:data:`atoll.delegation.META_KEYS`), which is how an atoll parent sends them.
With ``[server] mcp_expose_tools`` it also re-exports the agent's own tools (all, or those
matching the globs), each run with its own timeout (:func:`atoll.tools.call_timeout`: its entry's
``timeout``, else ``[agent] tool_timeout``), as in the agent loop.

This module imports the SDK; the HTTP endpoint (:class:`atoll.mcp_http.LazyMcpEndpoint`) imports it on first use.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from typing import TYPE_CHECKING, Any

from mcp import types
from mcp.server.lowlevel import Server
from starlette.requests import Request

from atoll._version import __version__
from atoll.agent.events import RunFinished
from atoll.delegation import headers_from_meta
from atoll.dialects.mcp.parse import (
    ASK_INPUT_SCHEMA,
    ASK_OUTPUT_SCHEMA,
    ask_turn,
    tool_description,
    tool_name,
)
from atoll.dialects.mcp.render import AnswerRenderer, answer_result, error_result, tool_result
from atoll.errors import AtollError
from atoll.server.context import caller
from atoll.server.conversation import converse
from atoll.tools import call_timeout

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from atoll.messages import ToolSpec
    from atoll.server.runtime import AgentRuntime

logger = logging.getLogger(__name__)


def exported_tools(runtime: AgentRuntime, *, can_ask: bool) -> list[ToolSpec]:
    """The agent's own tools that ``[server] mcp_expose_tools`` re-exports (none by default).
    Tools that need a person's approval are offered only to clients that can ask one
    (``can_ask``: MCP elicitation); the others never see them."""
    choice = runtime.config.server.mcp_expose_tools
    if choice is False:
        return []
    specs = runtime.toolbox.specs()
    if choice is not True:
        specs = [s for s in specs if any(fnmatch.fnmatchcase(s.name, pattern) for pattern in choice)]
    return [s for s in specs if can_ask or not runtime.approvals.rules.needs(s)]


def _can_ask(ctx: ServerRequestContext[Any]) -> bool:
    capabilities = ctx.session.client_capabilities
    return capabilities is not None and capabilities.elicitation is not None


APPROVAL_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"approve": {
    "type": "boolean", "title": "Run it?", "description": "Allow this tool call"}}, "required": ["approve"]}


class AgentMcp:
    """The MCP handlers for one agent; the transports only carry them."""

    def __init__(self, runtime: AgentRuntime, *, owner: str | None = None) -> None:
        self.runtime = runtime
        #: Whose sessions the turns use: fixed for stdio, else the key of each HTTP request.
        self.owner = owner
        self.ask_name = tool_name(runtime.name)
        agent = runtime.config.agent
        self.server: Server[Any] = Server(
            runtime.name, version=agent.version or __version__, description=agent.description or None,
            on_list_tools=self.list_tools, on_call_tool=self.call_tool)

    async def list_tools(self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None,
                         ) -> types.ListToolsResult:
        agent = self.runtime.config.agent
        tools = [types.Tool(name=self.ask_name, description=tool_description(agent.description, agent.capabilities),
                            input_schema=ASK_INPUT_SCHEMA, output_schema=ASK_OUTPUT_SCHEMA)]
        tools += [types.Tool(name=s.name, description=s.description, input_schema=s.parameters)
                  for s in exported_tools(self.runtime, can_ask=_can_ask(ctx)) if s.name != self.ask_name]
        return types.ListToolsResult(tools=tools)

    async def call_tool(self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams,
                        ) -> types.CallToolResult:
        try:
            if params.name == self.ask_name:
                return await self._ask(ctx, params)
            spec = next((s for s in exported_tools(self.runtime, can_ask=_can_ask(ctx)) if s.name == params.name),
                        None)
            if spec is None:
                return error_result(f"unknown tool {params.name!r}")
            self.runtime.require_ready()
            if self.runtime.approvals.rules.needs(spec) and not await self._approved(ctx, spec, params.arguments):
                return error_result(f"the call to {spec.name!r} was not approved")
            timeout = call_timeout(spec, self.runtime.config.agent.tool_timeout)
            result = await self.runtime.toolbox.call(params.name, params.arguments or {}, timeout=timeout)
            return tool_result(result.content, is_error=result.is_error)
        except AtollError as exc:
            return error_result(exc.message)

    async def _approved(self, ctx: ServerRequestContext[Any], spec: ToolSpec, arguments: dict[str, Any] | None,
                        ) -> bool:
        """Ask the person at the MCP client (elicitation) whether this call may run."""
        message = f"The agent {self.runtime.name} wants to run {spec.name} with {json.dumps(arguments or {})}."
        try:
            answer = await ctx.session.elicit_form(message, APPROVAL_SCHEMA, ctx.request_id)
        except Exception as exc:  # a client that cannot be asked: the call does not run
            logger.info("approval for %s could not be asked: %s", spec.name, exc)
            return False
        return answer.action == "accept" and bool((answer.content or {}).get("approve"))

    async def _ask(self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        turn = ask_turn(params.arguments)
        self.runtime.require_ready()
        http = ctx.request if isinstance(ctx.request, Request) else None
        owner = self.owner if self.owner is not None else caller(http) if http is not None else ""
        # the request's headers count as on the other dialects; an MCP client sends the delegation ones as _meta
        headers = {**(http.headers if http is not None else {}), **headers_from_meta(params.meta)}
        renderer = AnswerRenderer(turn.session_id)
        reply: dict[str, Any] | None = None
        async for event in converse(self.runtime, turn.run, session_id=turn.session_id, owner=owner,
                                    headers=headers):
            if isinstance(event, RunFinished):  # read on to the end: the session is saved after it
                reply = renderer.reply(event)
            for step in renderer.chunks(event):
                await ctx.session.report_progress(step.progress, None, step.message)
        if reply is None:
            raise AtollError("the agent stopped without finishing its answer")
        return answer_result(reply)


async def serve_stdio(runtime: AgentRuntime, owner: str = "") -> None:
    """Serve MCP on stdin/stdout until the client closes stdin, on behalf of ``owner`` (a key
    fingerprint, or "" for the local user's own sessions). While it runs, the SDK points file
    descriptor 1 at stderr, so nothing but MCP reaches stdout."""
    from mcp.server.stdio import stdio_server

    agent = AgentMcp(runtime, owner=owner)
    await runtime.start()
    try:
        async with stdio_server() as (read, write):
            await agent.server.run(read, write, agent.server.create_initialization_options())
    finally:
        await runtime.aclose()
