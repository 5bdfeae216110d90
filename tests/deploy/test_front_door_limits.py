"""Failure edges of the front door and the deploy upload, against real agent processes."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from atoll.deploy.relay import MAX_ROUTED_BODY
from tests.deploy.conftest import running_server, write_agent

pytestmark = pytest.mark.anyio


async def chunked(total: int, piece: int = 1024 * 1024) -> AsyncIterator[bytes]:
    """A body sent without Content-Length, as a streaming client sends it."""
    sent = 0
    while sent < total:
        yield b" " * min(piece, total - sent)
        sent += piece


async def test_an_agent_dying_mid_stream_ends_the_stream_with_an_error_line(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "alpha")
    async with running_server(agents) as run:
        body = {"model": "alpha", "messages": [{"role": "user", "content": "/slow 50 0.1"}]}
        lines: list[dict[str, object]] = []
        async with run.client.stream("POST", "/api/chat", json=body) as response:
            async for line in response.aiter_lines():
                lines.append(json.loads(line))
                if len(lines) == 2:
                    os.kill(run.runner("alpha").proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
        assert lines[0]["done"] is False
        assert "error" in lines[-1] and "mid-stream" in str(lines[-1]["error"])


async def test_bodies_past_the_limit_are_refused_even_without_content_length(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "alpha")
    async with running_server(agents) as run:
        routed = await run.client.post("/api/chat", content=chunked(MAX_ROUTED_BODY + 1))
        assert routed.status_code == 413 and "request body too large: the limit is" in routed.json()["error"]
        limit = run.server.deployer.limits.max_package_bytes
        boundary = "x" * 16
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n"
                "Content-Type: application/zip\r\n\r\n").encode()

        async def upload() -> AsyncIterator[bytes]:
            yield head
            async for piece in chunked(limit + 2 * 1024 * 1024):
                yield piece

        refused = await run.client.post("/agents/deploy", content=upload(),
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert refused.status_code == 413 and refused.json()["error_code"] == "PAYLOAD_TOO_LARGE"
