"""An agent's MCP servers on the Ray backend: each replica reads the mcp.json beside its agent file
(its own working folder is Ray's) and starts the servers it names inside itself, and Serve sends it
no request before they are connected: the first request after the fleet is up already has the tools,
never a 503 "Agent not initialized (state: starting)"."""

from __future__ import annotations

import httpx
import pytest

from tests.ray.conftest import RayFleet

pytestmark = pytest.mark.ray


def test_every_replica_has_the_tools_of_the_mcp_json_beside_its_agent_file(ray_fleet: RayFleet) -> None:
    for _ in range(8):  # both replicas of echo, by Serve's choice
        tools = httpx.get(f"{ray_fleet.ingress}/agent/echo/atoll/tools", timeout=30)
        assert tools.status_code == 200, tools.text
        assert any(tool["name"].endswith("enable_extra") for tool in tools.json()["tools"]), tools.text
