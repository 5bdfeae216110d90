"""atoll as an MCP server: the agent is one tool (``message`` + optional ``session_id``).

``parse`` turns the tool's arguments into the neutral request; ``render`` turns the agent's events
into progress notifications and the tool's result. The MCP SDK (imported only by ``render``
and the server module that mounts it) does the protocol.
"""
