"""A remote that accepts connections and never answers must not hang the front door: listings
answer within their bound, and a relayed request ends when its caller goes away (the front door
closes its connection to the remote instead of waiting on it forever)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from atoll.deploy.config import RemoteServer
from atoll.deploy.remote import LISTING_TIMEOUT
from tests.deploy.conftest import make_config, running_server, write_agent
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio


@dataclass
class Stalling:
    """A raw TCP server: answers ``/api/tags`` listing ``model`` (unless ``stall_listing`` stalls it
    as well) and holds every other request open without a byte of answer."""

    model: str
    stall_listing: bool = False
    port: int = 0
    held: int = 0
    closed: int = 0
    _server: asyncio.Server | None = field(default=None, repr=False)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            if path == b"/api/tags" and not self.stall_listing:
                body = json.dumps({"models": [{"name": f"{self.model}:latest", "model": f"{self.model}:latest",
                                              "modified_at": "2026-01-01T00:00:00+00:00", "size": 0,
                                              "digest": "", "details": {}}]}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                             b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
                return
            self.held += 1
            while await reader.read(65536):  # never answer; wait for the peer to close
                pass
            self.closed += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed += 1
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def stalling(model: str, stall_listing: bool = False) -> AsyncIterator[Stalling]:
    remote = Stalling(model, stall_listing)
    server = await asyncio.start_server(remote.handle, "127.0.0.1", 0)
    remote.port = server.sockets[0].getsockname()[1]
    try:
        yield remote
    finally:
        server.close()


async def test_stalled_remote_listing_answers_within_the_bound(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "alpha")
    async with stalling("mute", stall_listing=True) as mute:
        remotes = [RemoteServer(name="mute", host="127.0.0.1", port=mute.port)]
        async with running_server(agents, make_config(remote_servers=remotes)) as run:
            started = time.monotonic()
            tags = await run.bare.get("/api/tags")
            assert time.monotonic() - started < LISTING_TIMEOUT + 5
            assert [m["name"] for m in tags.json()["models"]] == ["alpha:latest"]
            states = (await run.client.get("/remote")).json()["remote_servers"]
            assert states[0]["state"] == "not_running" and "no answer" in states[0]["error"]


async def test_a_relay_to_a_stalled_remote_ends_when_the_caller_goes_away(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    async with stalling("slowpoke") as slow:
        remotes = [RemoteServer(name="slow", host="127.0.0.1", port=slow.port)]
        async with running_server(agents, make_config(remote_servers=remotes)) as run:
            async with httpx.AsyncClient(base_url=run.url, timeout=httpx.Timeout(10, read=1), trust_env=False) as c:
                with pytest.raises(httpx.ReadTimeout):
                    await c.post("/api/chat", json={"model": "slowpoke", "stream": False,
                                                    "messages": [{"role": "user", "content": "hi"}]})
            await wait_until_async(lambda: slow.held == 1, timeout=10, what="the relay reached the remote")
            # The caller is gone: the front door stops waiting and closes its connection to the remote.
            await wait_until_async(lambda: slow.closed == 1, timeout=10, what="the relay to the remote ended")
