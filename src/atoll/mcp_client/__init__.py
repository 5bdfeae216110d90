"""MCP servers (stdio, streamable HTTP, SSE) as a :class:`~atoll.tools.Toolbox`.

``McpToolbox(servers, connect_timeout=...)`` runs the tools of every configured server;
``CompositeToolbox(*toolboxes)`` merges it with others (e.g. the child agents).
"""

from atoll.mcp_client.composite import CompositeToolbox
from atoll.mcp_client.connection import McpConnection, ServerUnavailable
from atoll.mcp_client.naming import assign_names, sanitize
from atoll.mcp_client.results import result_to_text
from atoll.mcp_client.toolbox import McpToolbox

__all__ = [
    "CompositeToolbox",
    "McpConnection",
    "McpToolbox",
    "ServerUnavailable",
    "assign_names",
    "result_to_text",
    "sanitize",
]
