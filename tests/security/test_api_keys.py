"""API keys: public routes stay open, everything else needs ``Authorization: Bearer <key>``,
with the official ollama and openai clients and with raw HTTP; sessions belong to their key."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from tests.security.conftest import KEY_A, KEY_B, bearer, start
from tests.support.servers import AgentServer

CHAT = {"model": "echo", "stream": False, "messages": [{"role": "user", "content": "hello"}]}

PROTECTED = [
    ("GET", "/api/tags", None),
    ("GET", "/api/ps", None),
    ("POST", "/api/show", {"model": "echo"}),
    ("POST", "/api/chat", CHAT),
    ("POST", "/api/generate", {"model": "echo", "prompt": "hi", "stream": False}),
    ("GET", "/api/sessions", None),
    ("POST", "/api/sessions/cleanup", None),
    ("GET", "/atoll/status", None),
    ("GET", "/atoll/tools", None),
    ("GET", "/atoll/openapi.json", None),
    ("GET", "/metrics", None),
    ("GET", "/v1/models", None),
    ("POST", "/v1/chat/completions", {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}),
]


@pytest.mark.parametrize(("method", "path"), [("GET", "/"), ("HEAD", "/"), ("GET", "/health"),
                                              ("GET", "/api/version")])
def test_public_routes_need_no_key(keyed_server: AgentServer, method: str, path: str) -> None:
    assert httpx.request(method, keyed_server.url + path).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_protected_routes_refuse_a_missing_or_wrong_key(keyed_server: AgentServer, method: str, path: str,
                                                        body: dict | None) -> None:
    for headers in ({}, bearer("sk-wrong"), {"Authorization": KEY_A}, {"Authorization": f"Basic {KEY_A}"}):
        response = httpx.request(method, keyed_server.url + path, json=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        error = response.json()["error"]
        message = error["message"] if path.startswith("/v1/") else error
        assert "API key" in message
        if not path.startswith("/v1/"):
            assert response.json()["detail"] == message


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_protected_routes_accept_either_key(keyed_server: AgentServer, method: str, path: str,
                                            body: dict | None) -> None:
    for key in (KEY_A, KEY_B):
        response = httpx.request(method, keyed_server.url + path, json=body, headers=bearer(key))
        assert response.status_code == 200, response.text


def test_scheme_is_case_insensitive(keyed_server: AgentServer) -> None:
    response = httpx.get(keyed_server.url + "/api/tags", headers={"Authorization": f"bearer   {KEY_A}"})
    assert response.status_code == 200


def test_cors_preflight_needs_no_key(keyed_server: AgentServer) -> None:
    response = httpx.options(keyed_server.url + "/api/chat", headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_errors_reach_browsers_with_cors_headers(keyed_server: AgentServer) -> None:
    response = httpx.get(keyed_server.url + "/api/tags", headers={"Origin": "http://localhost:3000"})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_ollama_client(keyed_server: AgentServer) -> None:
    for headers in (None, bearer("sk-wrong")):
        with pytest.raises(ollama.ResponseError) as caught:
            ollama.Client(host=keyed_server.url, headers=headers).chat("echo", [{"role": "user", "content": "x"}])
        assert caught.value.status_code == 401
        assert "API key" in caught.value.error
    client = ollama.Client(host=keyed_server.url, headers=bearer(KEY_A))
    assert client.chat("echo", [{"role": "user", "content": "hi"}]).message.content == "You said: hi"
    assert [m.model for m in client.list().models] == ["echo:latest"]


async def test_ollama_async_client_streams_with_a_key(keyed_server: AgentServer) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        await ollama.AsyncClient(host=keyed_server.url).generate("echo", "hi")
    assert caught.value.status_code == 401
    client = ollama.AsyncClient(host=keyed_server.url, headers=bearer(KEY_B))
    parts = [part.message.content async for part in await client.chat(
        "echo", [{"role": "user", "content": "/count 5"}], stream=True)]
    assert "".join(parts) == "w1 w2 w3 w4 w5" and len(parts) > 2


def test_openai_sdk(keyed_server: AgentServer) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.AuthenticationError) as caught:
        openai.OpenAI(base_url=keyed_server.url + "/v1", api_key="sk-wrong", max_retries=0) \
            .chat.completions.create(model="echo", messages=messages)  # type: ignore[arg-type]
    assert "invalid API key" in str(caught.value)
    client = openai.OpenAI(base_url=keyed_server.url + "/v1", api_key=KEY_A, max_retries=0)
    reply = client.chat.completions.create(model="echo", messages=messages)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "You said: hi"
    assert client.models.list().data


def test_a_session_belongs_to_the_key_that_created_it(keyed_server: AgentServer) -> None:
    session = uuid.uuid4().hex
    created = httpx.post(keyed_server.url + "/api/chat", json=CHAT,
                         headers=bearer(KEY_A) | {"X-Session-ID": session})
    assert created.status_code == 200
    url = f"{keyed_server.url}/api/sessions/{session}"
    assert httpx.get(url, headers=bearer(KEY_B)).status_code == 404
    assert httpx.delete(url, headers=bearer(KEY_B)).status_code == 404
    owned = httpx.get(url, headers=bearer(KEY_A))
    assert owned.status_code == 200 and owned.json()["messages"][-1]["content"] == "You said: hello"


def test_keys_never_reach_the_log(keyed_server: AgentServer) -> None:
    httpx.get(keyed_server.url + "/api/tags", headers=bearer(KEY_A))
    httpx.get(keyed_server.url + "/api/tags", headers=bearer("sk-wrong-guess"))
    output = keyed_server.output()
    assert "/api/tags 401" in output  # the access log is there ...
    assert KEY_A not in output and KEY_B not in output and "sk-wrong-guess" not in output  # ... keys are not


def test_keys_from_the_environment(tmp_path: Path) -> None:
    for server in start(tmp_path, 'session_store = "memory"\n', ATOLL_API_KEYS=f" {KEY_A} , {KEY_B} "):
        assert httpx.get(server.url + "/api/tags").status_code == 401
        assert httpx.get(server.url + "/api/tags", headers=bearer(KEY_B)).status_code == 200
        assert "WARNING" not in server.output() and "Auth:     2 API key(s)" in server.output()
