"""An OpenAI-compatible upstream whose model writes tool-call arguments nested deeper than JSON
parsers go (what a prompt injection can ask of it): the agent turns them into a failed tool call the
model is told about, and answers; never a 500 from a ``RecursionError``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.providers.helpers import openai_agent_toml
from tests.support.servers import AgentServer, run_agent_server, write_agent

DEEP = "[" * 100_000


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class _Upstream(BaseHTTPRequestHandler):
    """First a tool call with the deep arguments; once the conversation holds a tool result, text."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answered = any(m.get("role") == "tool" for m in request["messages"])
        if answered:
            chunks = [_chunk({"role": "assistant", "content": "done"}), _chunk({}, "stop")]
        else:
            call = {"index": 0, "id": "call_1", "type": "function",
                    "function": {"name": "lookup", "arguments": DEEP}}
            chunks = [_chunk({"role": "assistant", "tool_calls": [call]}), _chunk({}, "tool_calls")]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"".join(chunks) + b"data: [DONE]\n\n")

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    folder: Path = tmp_path_factory.mktemp("deep")
    toml = openai_agent_toml("deep", upstream.server_address[1])
    try:
        with run_agent_server(write_agent(folder, toml), cwd=folder) as server:
            yield server
    finally:
        upstream.shutdown()
        upstream.server_close()


def test_arguments_nested_too_deeply_are_a_failed_call_and_the_turn_goes_on(agent: AgentServer) -> None:
    reply = httpx.post(agent.url + "/api/chat", timeout=60, json={
        "model": "deep", "stream": False, "messages": [{"role": "user", "content": "look it up"}]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["message"]["content"] == "done"
