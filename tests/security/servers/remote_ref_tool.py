"""An MCP server (the SDK's own MCPServer, stdio) whose tool ``lookup`` has an input schema with a
``$ref`` to the URL given as the first argument: atoll must never fetch it."""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("remote-ref")


@server.tool()
def lookup(city: str) -> str:
    """Look a city up."""
    return f"looked up {city}"


tool = server._tool_manager.get_tool("lookup")
assert tool is not None
tool.parameters = {"type": "object", "properties": {"city": {"$ref": sys.argv[1]}}, "required": ["city"]}

if __name__ == "__main__":
    server.run("stdio")
