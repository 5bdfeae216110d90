import atoll.delegation
import atoll.mcp_client
import atoll.subagents


def test_public_surface() -> None:
    assert sorted(atoll.mcp_client.__all__) == [
        "CompositeToolbox", "McpConnection", "McpToolbox", "ServerUnavailable",
        "assign_names", "result_to_text", "sanitize",
    ]
    assert atoll.subagents.__all__ == ["SubAgentToolbox"]
    assert sorted(atoll.delegation.__all__) == [
        "DELEGATION_HEADER", "MAX_DELEGATION_DEPTH", "META_KEYS", "bind_parent_session", "delegation_depth",
        "delegation_headers", "delegation_meta", "headers_from_meta", "parent_key", "refusal",
    ]
