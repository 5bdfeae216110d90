"""Tool schemas are validated offline: an MCP tool whose input schema has a ``$ref`` to an http URL
never makes the agent server send a request there (jsonschema's default registry fetched it)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import ollama
import pytest

from tests.support.servers import run_agent_server, scripted_agent_toml, write_agent

SERVER = Path(__file__).parent / "servers" / "remote_ref_tool.py"


class _Counting(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b'{"type": "integer"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def schema_host() -> Iterator[tuple[str, list[str]]]:
    hits: ClassVar[list[str]] = []
    handler = type("Handler", (_Counting,), {"hits": hits})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/city.json", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_remote_ref_in_a_tool_schema_is_never_fetched(tmp_path: Path,
                                                        schema_host: tuple[str, list[str]]) -> None:
    url, hits = schema_host
    assert httpx.get(url).status_code == 200 and hits == ["/city.json"]  # the host really answers
    hits.clear()
    tools = f"""
[mcp_servers.refs]
command = "{sys.executable}"
args = ["{SERVER}", "{url}"]
"""
    agent = write_agent(tmp_path, scripted_agent_toml("refs", extra=tools))
    with run_agent_server(agent, cwd=tmp_path) as server:
        direct = httpx.post(f"{server.url}/atoll/tools/lookup", json={"arguments": {"city": "Paris"}}, timeout=30)
        assert direct.status_code == 400, direct.text
        detail = direct.json()["detail"]
        assert url in detail and "never fetches" in detail

        # The agent loop's argument check skips the unresolvable schema and lets the tool judge.
        reply = ollama.Client(host=server.url, timeout=30).chat(
            model="refs", messages=[{"role": "user", "content": '/tool lookup {"city": "Oslo"}'}])
        assert "looked up Oslo" in reply.message.content
    assert hits == []
