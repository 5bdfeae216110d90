"""Wire details and error cases over raw HTTP (what curl and hand-written clients see)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.servers import AgentServer


def lines(response: httpx.Response) -> list[dict]:
    assert response.text.endswith("\n") and "\n\n" not in response.text
    return [json.loads(line) for line in response.text.splitlines()]


def test_root_and_head_say_ollama_is_running(echo_server: AgentServer) -> None:
    for method in ("GET", "HEAD"):
        response = httpx.request(method, echo_server.url + "/")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
    assert httpx.get(echo_server.url + "/").text == "Ollama is running"


def test_health_and_version(echo_server: AgentServer) -> None:
    health = httpx.get(echo_server.url + "/health").json()
    assert health["status"] == "healthy" and "T" in health["timestamp"]
    version = httpx.get(echo_server.url + "/api/version").json()["version"]
    assert tuple(int(p) for p in version.split(".")) >= (0, 6, 4)


def test_stream_is_the_default_and_is_ndjson(echo_server: AgentServer) -> None:
    response = httpx.post(echo_server.url + "/api/chat",
                          json={"model": "echo", "messages": [{"role": "user", "content": "a b"}]})
    assert response.headers["content-type"] == "application/x-ndjson"
    chunks = lines(response)
    assert len(chunks) > 1 and [c["done"] for c in chunks].count(True) == 1
    for chunk in chunks:
        assert chunk["message"]["role"] == "assistant" and isinstance(chunk["message"]["content"], str)
        assert {"model", "created_at", "done"} <= chunk.keys()
    final = chunks[-1]
    assert final["message"]["content"] == "" and final["done_reason"] == "stop"
    for key in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
                "eval_duration"):
        assert isinstance(final[key], int)


def test_stream_false_is_one_object_with_metrics(echo_server: AgentServer) -> None:
    response = httpx.post(echo_server.url + "/api/chat", json={
        "model": "echo", "stream": False, "messages": [{"role": "user", "content": "x"}]})
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["done"] is True and body["message"]["content"] == "You said: x" and body["eval_count"] == 3


@pytest.mark.parametrize(("path", "body", "status", "error"), [
    ("/api/chat", b"", 400, "missing request body"),
    ("/api/chat", b"{not json", 400, "invalid JSON body"),
    ("/api/chat", b"[1, 2]", 400, "must be a JSON object"),
    ("/api/chat", b'{"messages": []}', 400, "model is required"),
    ("/api/chat", b'{"model": "gpt-4", "messages": []}', 404, "model 'gpt-4' not found"),
    ("/api/chat", b'{"model": "echo", "messages": "hi"}', 400, "messages"),
    ("/api/chat", b'{"model": "echo", "messages": [{"role": "wizard", "content": "x"}]}', 400, "unknown role"),
    ("/api/chat", b'{"model": "echo", "format": 12, "messages": [{"role": "user", "content": "x"}]}', 400,
     "invalid format"),
    ("/api/chat", b'{"model": "echo", "options": {"temperature": "hot"},'
                  b' "messages": [{"role": "user", "content": "x"}]}', 400, "temperature"),
    ("/api/chat", b'{"model": "echo", "think": "extreme", "messages": [{"role": "user", "content": "x"}]}', 400,
     "think"),
    ("/api/generate", b'{"prompt": "x"}', 404, "model '' not found"),
    ("/api/generate", b'{"model": "echo", "prompt": "x", "raw": true, "system": "s"}', 400, "raw mode"),
    ("/api/embed", b'{"model": "echo", "input": "x", "dimensions": 0}', 400, "dimensions"),
    ("/api/embed", b'{"model": "echo", "input": "x", "dimensions": -1}', 400, "dimensions"),
    ("/api/show", b"{}", 400, "model is required"),
    ("/api/show", b'{"name": "nope"}', 404, "model 'nope' not found"),
])
def test_bad_requests_get_clear_4xx_with_error_and_detail(echo_server: AgentServer, path: str, body: bytes,
                                                          status: int, error: str) -> None:
    response = httpx.post(echo_server.url + path, content=body,
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == status, response.text
    payload = response.json()
    assert error in payload["error"] and payload["detail"].startswith(payload["error"])


def test_unknown_path_404_and_wrong_method_405(echo_server: AgentServer) -> None:
    assert httpx.get(echo_server.url + "/api/nothing").status_code == 404
    assert httpx.get(echo_server.url + "/api/chat").status_code == 405
    assert httpx.delete(echo_server.url + "/api/tags").status_code == 405


def test_error_before_first_byte_is_a_status_and_after_is_a_last_line(echo_server: AgentServer) -> None:
    before = httpx.post(echo_server.url + "/api/chat", json={
        "model": "echo", "messages": [{"role": "user", "content": "/error provider exploded"}]})
    assert before.status_code == 500 and before.json()["error"] == "provider exploded"
    after = httpx.post(echo_server.url + "/api/chat", json={
        "model": "echo", "messages": [{"role": "user", "content": "/error-after lost it"}]})
    assert after.status_code == 200
    chunks = lines(after)
    assert chunks[-1] == {"error": "lost it"} and not any(c.get("done") for c in chunks)


def test_a_stream_ends_with_a_final_line_whatever_ends_the_generation(echo_server: AgentServer) -> None:
    """Not only an Exception: a stray CancelledError (a BaseException) raised by the provider used to
    leave the client waiting until request_timeout (600 s)."""
    ollama = httpx.post(echo_server.url + "/api/chat", timeout=20, json={
        "model": "echo", "messages": [{"role": "user", "content": "/cancelled-after"}]})
    chunks = lines(ollama)
    assert chunks[0]["message"]["content"] == "partial"
    assert "generation failed: CancelledError" in chunks[-1]["error"] and not any(c.get("done") for c in chunks)
    openai = httpx.post(echo_server.url + "/v1/chat/completions", timeout=20, json={
        "model": "echo", "stream": True, "messages": [{"role": "user", "content": "/cancelled-after"}]})
    events = [line for line in openai.text.splitlines() if line.startswith("data: ")]
    assert "CancelledError" in events[-1] and events[-1] != "data: [DONE]"
    assert httpx.get(echo_server.url + "/health", timeout=5).status_code == 200  # the server is unharmed


def test_empty_messages_and_prompt_load_and_unload(echo_server: AgentServer) -> None:
    load = httpx.post(echo_server.url + "/api/chat", json={"model": "echo", "messages": []}).json()
    assert load["done_reason"] == "load" and load["message"] == {"role": "assistant", "content": ""}
    unload = httpx.post(echo_server.url + "/api/generate", json={"model": "echo", "prompt": "", "keep_alive": 0})
    assert unload.json()["done_reason"] == "unload" and unload.json()["response"] == ""


def test_lenient_history_from_langchain_and_openai_style_clients(echo_server: AgentServer) -> None:
    response = httpx.post(echo_server.url + "/api/chat", json={
        "model": "echo", "stream": False, "keep_alive": -1.0, "tools": [],
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": '{"a": 1}'}}]},
            {"role": "tool", "content": "42"},
        ]})
    assert response.status_code == 200, response.text
    assert response.json()["message"]["content"] == "Tool results: f=42"


def test_generate_context_continues_the_conversation(echo_server: AgentServer) -> None:
    first = httpx.post(echo_server.url + "/api/generate",
                       json={"model": "echo", "prompt": "remember me", "stream": False}).json()
    assert first["context"]
    second = httpx.post(echo_server.url + "/api/generate", json={
        "model": "echo", "prompt": "/history", "context": first["context"], "stream": False}).json()
    assert second["response"].startswith("system:You are echo. | user:remember me | assistant:You said: remember me")


def test_cors_preflight_from_a_local_web_app(echo_server: AgentServer) -> None:
    for origin in ("http://localhost:3000", "vscode-webview://abc"):
        response = httpx.options(echo_server.url + "/api/chat", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == origin
    denied = httpx.options(echo_server.url + "/api/chat", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in denied.headers
