"""Per-client rate limits through the front door: a spawned agent takes the caller's address from
the front door's header only with the secret it was handed at spawn, so two callers of the front
door are two buckets, and a forged header sent straight to the agent is ignored. Real deployment
server, real agent processes, clients on two loopback addresses."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import running_server, write_agent
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio

LIMITED = "rate_limit_per_minute = 2\nrate_limit_window_s = 600\n"


def _client(url: str, source: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=30, trust_env=False)


async def test_front_door_callers_get_their_own_buckets_and_a_forged_header_is_ignored(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "limited", extra=LIMITED)
    async with running_server(agents) as run:
        await wait_until_async(lambda: run.runner("limited").state == "running", timeout=60, what="agent running")
        async with _client(run.url, "127.0.0.1") as first, _client(run.url, "127.0.0.2") as second:
            assert [(await first.get("/agent/limited/api/tags")).status_code for _ in range(3)] == [200, 200, 429]
            # another caller of the same front door is not in the first one's bucket
            assert (await second.get("/agent/limited/api/tags")).status_code == 200
            # a caller cannot pick its address by sending the front door's headers itself
            forged = {"X-Atoll-Client": "10.1.2.3", "X-Atoll-Front-Door-Key": "guess"}
            assert (await second.get("/agent/limited/api/tags", headers=forged)).status_code == 200
            assert (await second.get("/agent/limited/api/tags", headers=forged)).status_code == 429

        agent_url = f"http://127.0.0.1:{run.runner('limited').port}"
        async with _client(agent_url, "127.0.0.3") as local_user:
            # straight to the agent: a bare or wrongly keyed header names no one else
            statuses = [(await local_user.get("/api/tags", headers={"X-Atoll-Client": f"10.0.0.{n}",
                                                                     "X-Atoll-Front-Door-Key": "guess"})).status_code
                        for n in range(3)]
            assert statuses == [200, 200, 429]
            bare = await local_user.get("/api/tags", headers={"X-Forwarded-For": "10.9.9.9"})
            assert bare.status_code == 429
