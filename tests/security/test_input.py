"""Input that must get a clear 4xx from a real agent server process, and what ``/atoll/status``
may show about its upstreams."""

from __future__ import annotations

import base64
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


def test_deeply_nested_json_inside_a_field_is_a_400_naming_the_field(echo_server) -> None:  # type: ignore[no-untyped-def]
    """JSON that clients carry inside a field is parsed too: nesting too deep is their mistake (400
    naming the field), not a server error."""
    deep = "[" * 5000
    context = [0x61746F63, *deep.encode()]  # atoll's conversation context mark, then the JSON bytes
    response = httpx.post(echo_server.url + "/api/generate", json={"model": "echo", "prompt": "hi", "context": context})
    assert response.status_code == 400 and "context" in response.json()["error"], response.text
    history = [{"role": "user", "content": "hi"},
               {"role": "assistant", "content": "", "tool_calls": [
                   {"id": "c1", "type": "function", "function": {"name": "clock", "arguments": deep}}]},
               {"role": "tool", "content": "12:00", "tool_call_id": "c1"},
               {"role": "user", "content": "and now?"}]
    for path in ("/api/chat", "/v1/chat/completions"):
        response = httpx.post(echo_server.url + path, json={"model": "echo", "messages": history, "stream": False})
        assert response.status_code == 400 and "arguments" in response.text, (path, response.text)
    cursor = base64.urlsafe_b64encode(deep.encode()).decode().rstrip("=")
    response = httpx.get(echo_server.url + "/api/sessions", params={"cursor": cursor})
    assert response.status_code == 400 and "cursor" in response.json()["error"], response.text


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


def test_bad_session_ids_are_a_400_before_any_work(echo_server) -> None:  # type: ignore[no-untyped-def]
    chat = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    for streaming in (False, True):
        for bad in ("日本", "", "a b", "x" * 129, "../etc"):
            response = httpx.post(echo_server.url + "/api/chat", json={**chat, "stream": streaming, "session_id": bad})
            if bad == "":  # an empty id is no id: a turn without a session
                assert response.status_code == 200
                continue
            assert response.status_code == 400 and "invalid session_id" in response.text, (bad, response.text)
    marked = [0x7A7A7A7A, *map(ord, "日本")]  # what a forged /api/generate context decodes to
    generated = httpx.post(echo_server.url + "/api/generate", json={"model": "echo", "prompt": "hi", "context": marked})
    assert generated.status_code in (200, 400)
    assert httpx.post(echo_server.url + "/v1/chat/completions", headers={"X-Session-ID": "a b"},
                      json={**chat, "stream": True}).status_code == 400
    ok = httpx.post(echo_server.url + "/api/chat", json={**chat, "stream": False, "session_id": "fine-1:a.b_c"})
    assert ok.status_code == 200 and ok.headers["x-session-id"] == "fine-1:a.b_c"


def test_forwarded_for_is_not_trusted_so_rate_limits_hold(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, """
[agent]
name = "limited"
[llm]
provider = "tests.support.scripted:ScriptedProvider"
[server]
session_store = "memory"
rate_limit_per_minute = 3
""")
    home = tmp_path / "home"
    home.mkdir()
    with run_agent_server(agent, cwd=tmp_path, env=server_env(HOME=str(home))) as server:
        statuses = [httpx.get(server.url + "/api/tags", headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
                    for i in range(6)]
        assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]


def test_idle_keep_alive_connections_outlive_client_pools(echo_server) -> None:  # type: ignore[no-untyped-def]
    """uvicorn's default closed idle connections after 5 s, just when httpx's pool reuses them."""
    import http.client
    import time

    connection = http.client.HTTPConnection("127.0.0.1", echo_server.port, timeout=10)
    try:
        connection.request("GET", "/api/version")
        assert connection.getresponse().read().startswith(b'{"version"')
        time.sleep(6.5)  # the idle time under test: longer than httpx's keep-alive expiry and uvicorn's old 5 s
        connection.request("GET", "/api/version")  # on the same connection: http.client never reconnects here
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_base_urls_are_kept_as_written_and_unknown_table_keys_are_warned_about(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, """
[agent]
name = "upstream"
[llm]
provider = "ollama"
base_url = "http://127.0.0.1:9/ollama/"
model = "m"
[server]
session_store = "memory"
[mcp_servers.files]
command = "true"
arg = ["--typo"]
[sub_agents.helper]
url = "http://127.0.0.1:9"
timeout_s = 5
""")
    home = tmp_path / "home"
    home.mkdir()
    with run_agent_server(agent, cwd=tmp_path, env=server_env(HOME=str(home))) as server:
        status = httpx.get(server.url + "/atoll/status").json()
        assert status["llm"]["base_url"] == "http://127.0.0.1:9/ollama"  # not .../ollama:11434
        output = server.output()
    assert "unknown key mcp_servers.files.arg ignored" in output
    assert "unknown key sub_agents.helper.timeout_s ignored" in output
