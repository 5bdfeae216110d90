"""Input that must get a clear 4xx from a real agent server process, and what ``/atoll/status``
may show about its upstreams."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.servers import run_agent_server, server_env, write_agent


def test_deeply_nested_json_is_a_400_on_every_json_route(echo_server) -> None:  # type: ignore[no-untyped-def]
    deep = b"[" * 100_000
    inside = b'{"model": "echo", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for path in ("/api/chat", "/api/generate", "/v1/chat/completions", "/api/show", "/atoll/tools/x"):
        for body in (deep, inside):
            response = httpx.post(echo_server.url + path, content=body)
            assert response.status_code in (400, 404), (path, response.status_code)
            assert response.status_code != 404 or path == "/atoll/tools/x"
    assert httpx.post(echo_server.url + "/api/chat", content=deep).json()["error"].startswith("invalid JSON body")


def test_status_never_shows_credentials_written_into_urls(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, """
[agent]
name = "upstream"
[llm]
provider = "ollama"
base_url = "http://alice:pa55word@127.0.0.1:9"
model = "m"
[server]
session_store = "memory"
""")
    home = tmp_path / "home"
    home.mkdir()
    with run_agent_server(agent, cwd=tmp_path, env=server_env(HOME=str(home))) as server:
        status = httpx.get(server.url + "/atoll/status")
        assert "pa55word" not in status.text and "alice" not in status.text
        assert status.json()["llm"]["base_url"] == "http://***@127.0.0.1:9"
