"""Web pages and DNS rebinding against a real agent server process: a disallowed ``Origin`` or a
foreign ``Host`` on the loopback listener is refused (403) before any route runs, whatever the
method or content type; local origins, configured ones and non-browser clients still work."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import start
from tests.support.servers import AgentServer

EVIL = "https://evil.example"
CHAT = json.dumps({"model": "echo", "stream": False, "messages": [{"role": "user", "content": "hi"}]})


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    """Keyless (the default), one extra origin and one extra host name in the file, more from the
    environment."""
    folder = tmp_path_factory.mktemp("guarded")
    yield from start(folder, 'session_store = "memory"\ncors_origins = ["https://chat.example.org"]\n'
                             'allowed_hosts = ["atoll.lan"]\n',
                     ATOLL_ORIGINS="https://also.example.org, chrome-extension://*",
                     ATOLL_ALLOWED_HOSTS="*.home.arpa")


@pytest.mark.parametrize(("method", "path", "content_type"), [
    ("POST", "/api/chat", "text/plain"), ("POST", "/api/chat", "application/json"),
    ("POST", "/v1/chat/completions", "text/plain"), ("POST", "/atoll/tools/anything", "text/plain"),
    ("GET", "/api/tags", None), ("DELETE", "/api/sessions/x", None), ("OPTIONS", "/api/chat", None)])
def test_a_page_from_another_origin_is_refused_before_any_route(guarded: AgentServer, method: str, path: str,
                                                                content_type: str | None) -> None:
    headers = {"Origin": EVIL, **({"Content-Type": content_type} if content_type else {})}
    if method == "OPTIONS":
        headers["Access-Control-Request-Method"] = "POST"
    response = httpx.request(method, guarded.url + path, headers=headers,
                             content=CHAT if method == "POST" else None)
    assert response.status_code == 403, response.text
    body = response.json()
    if path.startswith("/v1/"):  # OpenAI's error object, as for every other refusal under /v1
        message = body["error"]["message"]
    else:
        assert set(body) == {"error", "detail"}
        message = body["error"]
    assert "origin 'https://evil.example' is not allowed" in message
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("origin", [
    "http://localhost:3000", "http://127.0.0.1:8080", "http://[::1]:5173", "https://localhost", "http://0.0.0.0:1",
    "app://obsidian.md", "file://", "tauri://localhost", "vscode-webview://abc", "vscode-file://vscode-app",
    "https://chat.example.org", "https://also.example.org", "chrome-extension://abcdef"])
def test_allowed_origins_use_the_agent_and_read_the_answer(guarded: AgentServer, origin: str) -> None:
    response = httpx.post(guarded.url + "/api/chat", content=CHAT, headers={"Origin": origin})
    assert response.status_code == 200 and response.json()["message"]["content"] == "You said: hi"
    assert response.headers["access-control-allow-origin"] == origin
    assert "X-Session-ID" in response.headers["access-control-expose-headers"]


@pytest.mark.parametrize("origin", ["null", "http://localhost.evil.example", "https://127.0.0.1.nip.io",
                                    "http://chat.example.org", "https://chat.example.org.evil"])
def test_look_alike_origins_are_refused(guarded: AgentServer, origin: str) -> None:
    assert httpx.post(guarded.url + "/api/chat", content=CHAT, headers={"Origin": origin}).status_code == 403


@pytest.mark.parametrize("host", ["rebind.evil.example", "127.0.0.1.evil.example", "localhost.evil.example",
                                  "10.0.0.8"])
def test_dns_rebinding_host_names_are_refused_on_loopback(guarded: AgentServer, host: str) -> None:
    for path in ("/api/tags", "/api/chat"):
        response = httpx.request("POST" if path == "/api/chat" else "GET", guarded.url + path,
                                 headers={"Host": f"{host}:{guarded.port}"}, content=CHAT if "chat" in path else None)
        assert response.status_code == 403, (host, path)
        assert f"host '{host}:{guarded.port}' is not allowed" in response.json()["error"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "agent.localhost", "atoll.lan", "nas.home.arpa",
                                  socket.gethostname()])
def test_loopback_names_and_configured_hosts_are_answered(guarded: AgentServer, host: str) -> None:
    response = httpx.get(guarded.url + "/api/tags", headers={"Host": f"{host}:{guarded.port}"})
    assert response.status_code == 200


def test_a_page_of_an_allowed_host_may_call_its_own_server(guarded: AgentServer) -> None:
    """Same origin through an allowed name (a dashboard served by the server itself)."""
    host = f"atoll.lan:{guarded.port}"
    response = httpx.post(guarded.url + "/api/chat", content=CHAT, headers={"Host": host, "Origin": f"http://{host}"})
    assert response.status_code == 200


def test_non_browser_clients_send_no_origin_and_are_served(guarded: AgentServer) -> None:
    assert httpx.post(guarded.url + "/api/chat", content=CHAT).status_code == 200


def test_refusals_are_counted_and_logged(guarded: AgentServer) -> None:
    httpx.get(guarded.url + "/api/tags", headers={"Origin": EVIL, "X-Request-ID": "evil-page-1"})
    metrics = httpx.get(guarded.url + "/metrics").text
    assert 'atoll_http_requests_total{method="GET",route="/api/tags",status="403"}' in metrics
    assert any("evil-page-1" in line and "GET /api/tags 403" in line for line in guarded.output().splitlines())


def test_any_origin_is_allowed_only_on_request_and_then_warned_about(tmp_path: Path) -> None:
    for server in start(tmp_path, 'session_store = "memory"\n', ATOLL_ORIGINS="*"):
        assert httpx.post(server.url + "/api/chat", content=CHAT, headers={"Origin": EVIL}).status_code == 200
        assert "cors_origins allows '*'" in server.output()


def _raw(server: AgentServer, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


def test_content_length_with_transfer_encoding_is_refused(guarded: AgentServer) -> None:
    """A short declared length in front of a chunked body: the body is never read as a request."""
    body = CHAT.encode()
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    request = (f"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:{guarded.port}\r\nContent-Type: application/json\r\n"
               "Content-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode() + chunked
    reply = _raw(guarded, request)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]


def test_unknown_methods_share_one_metric_label(guarded: AgentServer) -> None:
    """Methods the HTTP parser knows (WebDAV's) reach the app and are counted as OTHER; ones it
    does not know are refused by the parser (400) before any label exists."""
    webdav = ("PROPFIND", "MKCOL", "PURGE", "UNLOCK")
    for method in webdav:
        assert httpx.request(method, guarded.url + "/api/tags").status_code in (404, 405)
    for method in ("BREW", "X-INVENTED"):
        assert httpx.request(method, guarded.url + "/api/tags").status_code in (400, 404, 405)
    metrics = httpx.get(guarded.url + "/metrics").text
    assert 'atoll_http_requests_total{method="OTHER",route="/api/tags",status="405"} 4.0' in metrics
    assert not any(f'method="{m}"' in metrics for m in (*webdav, "BREW", "X-INVENTED"))
