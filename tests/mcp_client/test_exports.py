import atoll.mcp_client
import atoll.subagents


def test_public_surface() -> None:
    assert sorted(atoll.mcp_client.__all__) == [
        "CompositeToolbox", "McpConnection", "McpToolbox", "ServerUnavailable",
        "assign_names", "result_to_text", "sanitize",
    ]
    assert sorted(atoll.subagents.__all__) == [
        "DELEGATION_HEADER", "SubAgentToolbox", "bind_parent_session", "delegation_depth", "parent_key",
    ]
