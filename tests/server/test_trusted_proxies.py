"""A standalone agent believes no forwarded header unless ``[server] trusted_proxies`` lists the
proxy: then per-client rate limits count the clients it names. Real agent server processes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.servers import run_agent_server, scripted_agent_toml, write_agent

LIMITED = "[server]\nrate_limit_per_minute = 2\nrate_limit_window_s = 600\n"


@pytest.mark.parametrize("trusted", [False, True])
def test_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path: Path, trusted: bool) -> None:
    extra = LIMITED + ('trusted_proxies = ["127.0.0.1"]\n' if trusted else "")
    agent = write_agent(tmp_path, scripted_agent_toml("limited", extra=extra))
    with run_agent_server(agent, cwd=tmp_path) as server:
        def tags(client: str) -> int:
            return httpx.get(f"{server.url}/api/tags", headers={"X-Forwarded-For": client}, timeout=10).status_code

        assert [tags("10.0.0.1") for _ in range(3)] == [200, 200, 429]
        assert tags("10.0.0.2") == (200 if trusted else 429)
