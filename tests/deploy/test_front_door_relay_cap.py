"""Relays are capped per agent (``max_relays_per_agent``): past the cap the front door answers 429
with ``Retry-After`` while the slow streams are held open, other agents are unaffected, and a slot
comes back when a stream ends."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import make_config, running_server, write_agent

pytestmark = pytest.mark.anyio


def slow_chat(model: str) -> dict[str, object]:
    return {"model": model, "stream": True, "messages": [{"role": "user", "content": "/slow 200 0.1"}]}


async def test_relays_past_the_cap_get_429_with_retry_after(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "alpha")
    write_agent(agents, "beta")
    async with running_server(agents, make_config(max_relays_per_agent=2)) as run, \
            httpx.AsyncClient(base_url=run.url, timeout=30, trust_env=False) as http:
        async with contextlib.AsyncExitStack() as held:
            flowing = []  # kept: a line iterator dropped mid-stream closes its connection
            for _ in range(2):
                stream = await held.enter_async_context(http.stream("POST", "/api/chat", json=slow_chat("alpha")))
                assert stream.status_code == 200
                flowing.append(stream.aiter_lines())
                assert "s1" in await flowing[-1].__anext__()  # the stream is flowing
            refused = await http.post("/api/chat", json=slow_chat("Alpha"))
            assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
            assert "max_relays_per_agent" in refused.json()["error"]
            prefixed = await http.get("/agent/alpha/health")  # the pass-through counts too
            assert prefixed.status_code == 429
            other = await http.post("/api/chat", json={"model": "beta", "stream": False,
                                                       "messages": [{"role": "user", "content": "hi"}]})
            assert other.status_code == 200
            health = await http.get("/health")  # the management API is not a relay
            assert health.status_code == 200
        # Both streams closed by the caller: their slots come back.
        again = await http.post("/api/chat", json={"model": "alpha", "stream": False,
                                                   "messages": [{"role": "user", "content": "hi"}]})
        assert again.status_code == 200 and again.json()["message"]["content"] == "You said: hi"
