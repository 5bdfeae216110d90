"""A 2026-07-28-era MCP server (the SDK's own MCPServer) whose tool list changes on request.

Run over stdio by the tests: ``enable_extra`` registers the tool ``extra`` and announces the
change, which 2026-era servers deliver only on ``subscriptions/listen`` streams.
"""

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("changing-tools")


def extra() -> str:
    """A tool that exists only after enable_extra ran."""
    return "extra ran"


@server.tool()
async def enable_extra(ctx: Context) -> str:
    """Add the tool 'extra' and announce the change."""
    server.add_tool(extra)
    await ctx.notify_tools_changed()
    return "enabled"


if __name__ == "__main__":
    server.run("stdio")
