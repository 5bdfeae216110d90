"""An OpenAI-compatible upstream that drops the connection in the middle of a streamed reply: the
agent answers 502 naming the upstream (non-streaming), or ends its stream with an error line;
never a 500 with a raw transport error."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.providers.helpers import openai_agent_toml
from tests.support.servers import AgentServer, run_agent_server, write_agent

FIRST_CHUNK = (b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
               b'"choices":[{"index":0,"delta":{"role":"assistant","content":"partial"},"finish_reason":null}]}\n\n')


def _serve(listener: socket.socket) -> None:
    """Answer every request with the start of an SSE stream, one chunk, then close mid-body."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn, contextlib.suppress(OSError):  # probes that only connect and leave
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                part = conn.recv(65536)
                if not part:
                    break
                data += part
            if not data:
                continue
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                         b"transfer-encoding: chunked\r\n\r\n"
                         + f"{len(FIRST_CHUNK):x}\r\n".encode() + FIRST_CHUNK + b"\r\n")
            conn.shutdown(socket.SHUT_RDWR)  # no last chunk: the body is cut


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    thread = threading.Thread(target=_serve, args=(listener,), daemon=True)
    thread.start()
    folder: Path = tmp_path_factory.mktemp("dropped")
    toml = openai_agent_toml("dropper", listener.getsockname()[1])
    try:
        with run_agent_server(write_agent(folder, toml), cwd=folder) as server:
            yield server
    finally:
        listener.close()
        thread.join(5)


def test_a_dropped_upstream_stream_is_a_502_not_a_500(agent: AgentServer) -> None:
    reply = httpx.post(agent.url + "/api/chat", timeout=30, json={
        "model": "dropper", "stream": False, "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 502, reply.text
    assert "OpenAI-compatible upstream at http://127.0.0.1:" in reply.json()["error"]


def test_once_streaming_it_ends_with_an_error_line(agent: AgentServer) -> None:
    reply = httpx.post(agent.url + "/api/chat", timeout=30, json={
        "model": "dropper", "messages": [{"role": "user", "content": "hi"}]})
    last = reply.text.strip().splitlines()[-1]
    assert "OpenAI-compatible upstream" in last and '"error"' in last, reply.text
