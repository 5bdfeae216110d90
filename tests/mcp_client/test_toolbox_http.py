"""McpToolbox against server-everything served over streamable HTTP and SSE on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import anyio.to_thread
import pytest

from atoll.config import McpServerConfig
from atoll.mcp_client import McpToolbox
from tests.mcp_client.helpers import HttpEverything
from tests.support.servers import free_port
from tests.support.waiting import wait_until_async

pytestmark = [pytest.mark.mcp, pytest.mark.timeout(90)]


async def test_streamable_http_lists_and_calls(everything_http: HttpEverything) -> None:
    config = McpServerConfig(url=everything_http.url, headers={"X-Test": "1"})
    assert config.type == "http"
    async with McpToolbox({"remote": config}, connect_timeout=10) as box:
        assert box.status()["remote"]["state"] == "connected"
        assert "echo" in {spec.name for spec in box.specs()}
        result = await box.call("echo", {"message": "over http"}, timeout=10)
        assert (result.is_error, result.content, result.source) == (False, "Echo: over http", "remote")
        timed_out = await box.call("trigger-long-running-operation", {"duration": 10, "steps": 2}, timeout=0.5)
        assert timed_out.is_error
        assert "timed out" in timed_out.content


async def test_sse_lists_and_calls(everything_sse: HttpEverything) -> None:
    config = McpServerConfig(url=everything_sse.url)
    assert config.type == "sse"
    async with McpToolbox({"legacy": config}, connect_timeout=10) as box:
        result = await box.call("get-sum", {"a": 4, "b": 5}, timeout=10)
        assert not result.is_error, result.content
        assert "9" in result.content


async def test_terminated_http_session_is_reconnected(everything_http: HttpEverything) -> None:
    async with McpToolbox({"remote": McpServerConfig(url=everything_http.url)}, connect_timeout=10) as box:
        assert not (await box.call("echo", {"message": "before"}, timeout=10)).is_error
        # A restarted server no longer knows our session id.
        await anyio.to_thread.run_sync(everything_http.stop)
        await anyio.to_thread.run_sync(everything_http.start)
        result = await box.call("echo", {"message": "after"}, timeout=10)
        assert (result.is_error, result.content) == (False, "Echo: after")
        assert box.status()["remote"]["restarts"] == 1


async def test_http_server_gone_gives_error_result_then_recovers(everything_http: HttpEverything) -> None:
    async with McpToolbox({"remote": McpServerConfig(url=everything_http.url)}, connect_timeout=5) as box:
        await anyio.to_thread.run_sync(everything_http.stop)
        down = await box.call("echo", {"message": "anyone?"}, timeout=5)
        assert down.is_error
        assert "remote" in down.content
        assert box.status()["remote"]["state"] == "failed"
        await anyio.to_thread.run_sync(everything_http.start)
        back = await box.call("echo", {"message": "back"}, timeout=10)
        assert (back.is_error, back.content) == (False, "Echo: back")


async def test_dead_port_is_left_out_quickly(everything_http: HttpEverything) -> None:
    servers = {
        "dead": McpServerConfig(url=f"http://127.0.0.1:{free_port()}/mcp"),
        "remote": McpServerConfig(url=everything_http.url),
    }
    started = time.perf_counter()
    async with McpToolbox(servers, connect_timeout=5) as box:
        assert time.perf_counter() - started < 5
        status = box.status()
        assert status["dead"]["state"] == "failed"
        assert "ConnectError" in status["dead"]["last_error"]
        assert status["remote"]["state"] == "connected"
        assert {spec.source for spec in box.specs()} == {"remote"}


async def test_a_server_down_at_start_is_picked_up_when_it_comes_up(everything_js: Path) -> None:
    late = HttpEverything(everything_js, "streamableHttp")
    config = McpServerConfig(url=late.url)
    async with McpToolbox({"late": config}, connect_timeout=2, retry_interval=0.3) as box:
        assert box.status()["late"]["state"] == "failed" and box.specs() == []
        await anyio.to_thread.run_sync(late.start)
        try:
            await wait_until_async(lambda: box.status()["late"]["state"] == "connected", timeout=30,
                                   what="the late server to be connected by the retry loop")
            assert "echo" in {spec.name for spec in box.specs()}
            result = await box.call("echo", {"message": "better late"}, timeout=10)
            assert result.content == "Echo: better late"
        finally:
            await anyio.to_thread.run_sync(late.stop)
