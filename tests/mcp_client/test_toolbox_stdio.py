"""McpToolbox against real stdio servers: server-everything (npm, 2025-11-25 era) and
mcp-server-time (PyPI, 2026-07-28 era)."""

from __future__ import annotations

import logging
import sys
import time

import anyio
import pytest

from atoll.config import McpServerConfig
from atoll.mcp_client import McpToolbox
from atoll.messages import ToolResult
from atoll.tools import Toolbox, call_timeout
from tests.mcp_client.helpers import (
    CHANGING_TOOLS,
    child_processes,
    everything_stdio_processes,
    hanging_server,
    kill_and_wait,
)
from tests.support.waiting import wait_until_async

pytestmark = [pytest.mark.mcp, pytest.mark.timeout(90)]


async def test_lists_and_calls_tools_of_both_protocol_eras(
    everything_stdio: McpServerConfig, time_stdio: McpServerConfig
) -> None:
    async with McpToolbox({"everything": everything_stdio, "time": time_stdio}, connect_timeout=15) as box:
        assert isinstance(box, Toolbox)
        specs = {spec.name: spec for spec in box.specs()}
        assert {"echo", "get-sum", "trigger-long-running-operation", "get_current_time"} <= specs.keys()
        assert specs["get-sum"].source == "everything"
        assert specs["get_current_time"].source == "time"
        assert specs["get-sum"].parameters["properties"].keys() >= {"a", "b"}

        result = await box.call("get-sum", {"a": 2, "b": 3}, timeout=10)
        assert (result.is_error, result.source) == (False, "everything")
        assert "5" in result.content
        assert result.duration_s > 0

        result = await box.call("get_current_time", {"timezone": "Europe/Paris"}, timeout=10)
        assert not result.is_error
        assert "Europe/Paris" in result.content

        status = box.status()
        assert status["everything"]["state"] == "connected"
        assert status["everything"]["protocol_version"] == "2025-11-25"
        assert status["time"]["protocol_version"] == "2026-07-28"
        assert status["time"]["tools"] == 2


async def test_tool_errors_come_back_as_error_results(everything_stdio: McpServerConfig) -> None:
    async with McpToolbox({"everything": everything_stdio}, connect_timeout=15) as box:
        bad_args = await box.call("get-sum", {"a": "not a number"}, timeout=10)
        assert bad_args.is_error
        assert "get-sum" in bad_args.content

        unknown = await box.call("no-such-tool", {}, timeout=10)
        assert unknown.is_error
        assert "unknown tool" in unknown.content

        echo = await box.call("echo", {"message": "still fine"}, timeout=10)
        assert (echo.is_error, echo.content) == (False, "Echo: still fine")


async def test_images_and_structured_content_become_text(everything_stdio: McpServerConfig) -> None:
    async with McpToolbox({"everything": everything_stdio}, connect_timeout=15) as box:
        image = await box.call("get-tiny-image", {}, timeout=10)
        assert "[image: image/png," in image.content
        links = await box.call("get-resource-links", {"count": 2}, timeout=10)
        assert links.content.count("[resource link:") == 2


async def test_call_timeout_is_an_error_result_and_the_session_survives(everything_stdio: McpServerConfig) -> None:
    async with McpToolbox({"everything": everything_stdio}, connect_timeout=15) as box:
        started = time.perf_counter()
        result = await box.call("trigger-long-running-operation", {"duration": 10, "steps": 2}, timeout=0.5)
        assert time.perf_counter() - started < 3
        assert result.is_error
        assert "timed out after 0.5 s" in result.content
        echo = await box.call("echo", {"message": "after timeout"}, timeout=10)
        assert not echo.is_error


async def test_per_server_timeout_overrides_the_callers(everything_js: object) -> None:
    config = McpServerConfig(command="node", args=[str(everything_js), "stdio"], timeout=0.5)
    async with McpToolbox({"everything": config}, connect_timeout=15) as box:
        spec = next(s for s in box.specs() if s.name == "trigger-long-running-operation")
        assert spec.timeout == 0.5 and call_timeout(spec, 60) == 0.5
        result = await box.call(spec.name, {"duration": 10, "steps": 2}, timeout=call_timeout(spec, 60))
        assert result.is_error
        assert "timed out after 0.5 s" in result.content


# The Node.js server-everything took over 3 s to answer its first request at a load average of 7.
CONNECT_S = 10


async def test_silent_and_broken_servers_are_left_out_within_the_connect_timeout(
    everything_stdio: McpServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    servers = {
        "everything": everything_stdio,
        "silent": hanging_server(),
        "missing": McpServerConfig(command="/nonexistent/mcp-server"),
        "crashing": McpServerConfig(command=sys.executable,
                                    args=["-c", "import sys; sys.exit('no config file here')"]),
        "off": McpServerConfig(command="node", enabled=False),
    }
    before = {p.pid for p in child_processes()}
    box = McpToolbox(servers, connect_timeout=CONNECT_S)
    started = time.perf_counter()
    try:
        await box.start()
        elapsed = time.perf_counter() - started
        assert elapsed < CONNECT_S + 1.0
        status = box.status()
        assert status["everything"]["state"] == "connected"
        silent = status["silent"]
        assert (silent["state"], silent["last_error"]) == ("failed", f"no answer within {CONNECT_S} s")
        assert status["missing"]["state"] == "failed"
        assert "command not found: /nonexistent/mcp-server" in status["missing"]["last_error"]
        assert status["crashing"]["state"] == "failed"
        assert "no config file here" in status["crashing"]["last_error"]  # the server's stderr
        assert status["off"]["state"] == "disabled"
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert f"MCP server 'silent' is unavailable: no answer within {CONNECT_S} s" in warnings
        assert {spec.source for spec in box.specs()} == {"everything"}
        assert not (await box.call("echo", {"message": "x"}, timeout=10)).is_error
    finally:
        await box.aclose()
    assert child_processes(exclude=before) == []


async def test_killed_stdio_server_is_restarted_on_next_use(everything_stdio: McpServerConfig) -> None:
    async with McpToolbox({"everything": everything_stdio}, connect_timeout=15) as box:
        [server] = everything_stdio_processes()
        kill_and_wait(server)

        result = await box.call("get-sum", {"a": 20, "b": 22}, timeout=15)
        assert not result.is_error, result.content
        assert "42" in result.content
        [restarted] = everything_stdio_processes()
        assert restarted.pid != server.pid
        status = box.status()["everything"]
        assert (status["state"], status["restarts"]) == ("connected", 1)


async def test_concurrent_calls_after_a_crash_share_one_restart(everything_stdio: McpServerConfig) -> None:
    async with McpToolbox({"everything": everything_stdio}, connect_timeout=15) as box:
        [server] = everything_stdio_processes()
        kill_and_wait(server)
        results: list[ToolResult] = []

        async def call(n: int) -> None:
            results.append(await box.call("get-sum", {"a": n, "b": 1}, timeout=15))

        async with anyio.create_task_group() as tg:
            for n in range(5):
                tg.start_soon(call, n)
        assert [r.is_error for r in results] == [False] * 5, [r.content for r in results]
        assert box.status()["everything"]["restarts"] == 1
        assert len(everything_stdio_processes()) == 1


async def test_aclose_leaves_no_child_process(
    everything_stdio: McpServerConfig, time_stdio: McpServerConfig
) -> None:
    before = {p.pid for p in child_processes()}
    box = McpToolbox({"a": everything_stdio, "b": everything_stdio, "time": time_stdio}, connect_timeout=15)
    await box.start()
    assert len(child_processes(exclude=before)) >= 3
    await box.aclose()
    assert child_processes(exclude=before) == []
    assert {s["state"] for s in box.status().values()} == {"closed"}
    after = await box.call("echo", {"message": "x"}, timeout=5)
    assert after.is_error


async def test_two_servers_with_the_same_tools_get_prefixed_names(everything_stdio: McpServerConfig) -> None:
    async with McpToolbox({"one": everything_stdio, "two": everything_stdio}, connect_timeout=15) as box:
        names = [spec.name for spec in box.specs()]
        assert len(names) == len(set(names))
        assert {"one__echo", "two__echo"} <= set(names)
        assert "echo" not in names
        one = await box.call("one__echo", {"message": "from one"}, timeout=10)
        two = await box.call("two__get-sum", {"a": 1, "b": 1}, timeout=10)
        assert (one.source, one.content) == ("one", "Echo: from one")
        assert (two.source, two.is_error) == ("two", False)


async def test_legacy_list_changed_notification_refreshes_tools(everything_stdio: McpServerConfig) -> None:
    # server-everything sends notifications/tools/list_changed right after the handshake.
    async with McpToolbox({"everything": everything_stdio}, connect_timeout=15) as box:
        conn = box.connections["everything"]
        await wait_until_async(lambda: conn.refreshes >= 1, timeout=10, what="a tools/list refresh after list_changed")
        assert len(box.specs()) == box.status()["everything"]["tools"] > 0


async def test_2026_list_changed_via_subscription_refreshes_tools() -> None:
    server = McpServerConfig(command=sys.executable, args=[str(CHANGING_TOOLS)])
    async with McpToolbox({"changing": server}, connect_timeout=15) as box:
        assert box.status()["changing"]["protocol_version"] == "2026-07-28"
        assert [spec.name for spec in box.specs()] == ["enable_extra"]
        assert not (await box.call("enable_extra", {}, timeout=10)).is_error
        await wait_until_async(lambda: "extra" in {spec.name for spec in box.specs()}, timeout=10,
                               what="the new tool 'extra'")
        result = await box.call("extra", {}, timeout=10)
        assert (result.is_error, result.content) == (False, "extra ran")
