"""The real Open WebUI 0.12.4 in front of a real agent server (checklist item 38).

Open WebUI runs as its own process from ``.test-clients/open-webui`` (``make open-webui``) on
127.0.0.1, with a fresh DATA_DIR, offline settings (reference section 10, pitfalls P1-P11) and
the agent server as its only Ollama connection. The test drives Open WebUI's own HTTP API the way
its frontend does: sign in (``WEBUI_AUTH=False`` still hands out a token), verify the connection,
list models, a streamed chat, a chat where the scripted LLM calls a client tool and the turn that
sends the tool result back, then unload (``keep_alive: 0``).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import REPO, AgentServer, free_port
from tests.support.waiting import wait_until

OPEN_WEBUI = REPO / ".test-clients/open-webui/bin/open-webui"
#: Seconds; about 15-25 s on an idle machine, over 90 s on a loaded one (first start runs ~80 migrations).
STARTUP_DEADLINE = 240.0
REQUEST_TIMEOUT = 30.0

pytestmark = pytest.mark.skipif(not OPEN_WEBUI.exists(),
                                reason="Open WebUI not installed: run `make open-webui`")

TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "default": "Paris"}},
                   "required": ["city"], "additionalProperties": True}}}


@dataclass
class OpenWebUI:
    url: str
    headers: dict[str, str]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _environment(home: Path, data: Path, ollama_url: str) -> dict[str, str]:
    """Built from scratch, so nothing of ours (API keys, proxies, other base URLs) reaches it."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "DATA_DIR": str(data),  # P2: the default is inside site-packages
        "WEBUI_SECRET_KEY": secrets.token_hex(32),  # P2: otherwise a key file is written to the CWD
        "WEBUI_AUTH": "False",  # single-user mode; sign-in still hands out a token (P11)
        "ENABLE_PERSISTENT_CONFIG": "False",  # P7: the environment wins
        "OLLAMA_BASE_URL": ollama_url,
        "ENABLE_OLLAMA_API": "True",
        "ENABLE_OPENAI_API": "False",  # P4: no api.openai.com
        "OFFLINE_MODE": "True",  # P4: no HF look-ups, no version check, no pip installs
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "ENABLE_VERSION_UPDATE_CHECK": "False",
        "RAG_EMBEDDING_MODEL_AUTO_UPDATE": "False",
        "RAG_EMBEDDING_ENGINE": "ollama",  # no sentence-transformers model to load at start-up
        "ANONYMIZED_TELEMETRY": "False",
        "DO_NOT_TRACK": "True",
        "SCARF_NO_ANALYTICS": "True",
        "AIOHTTP_CLIENT_TIMEOUT": str(int(REQUEST_TIMEOUT)),
        "GLOBAL_LOG_LEVEL": "INFO",
    }


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Open WebUI exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"Open WebUI not ready after {STARTUP_DEADLINE}s:\n{log.read_text(errors='replace')[-4000:]}")


@pytest.fixture(scope="module")
def open_webui(echo_server: AgentServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenWebUI]:
    folder = tmp_path_factory.mktemp("open-webui")
    (folder / "data").mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "open-webui.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen([str(OPEN_WEBUI), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                   cwd=folder, env=_environment(folder, folder / "data", echo_server.url),
                                   stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(url, process, log)
        signin = httpx.post(f"{url}/api/v1/auths/signin", json={"email": "", "password": ""},
                            timeout=REQUEST_TIMEOUT)
        assert signin.status_code == 200, signin.text
        assert signin.json()["role"] == "admin"
        yield OpenWebUI(url, {"Authorization": f"Bearer {signin.json()['token']}"}, log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def _post(webui: OpenWebUI, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(webui.url + path, json=body, headers=webui.headers, timeout=REQUEST_TIMEOUT)


def _sse(webui: OpenWebUI, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A streamed ``/api/chat/completions``: the ``data:`` chunks, checking they end with [DONE]."""
    chunks: list[str] = []
    with httpx.stream("POST", webui.url + "/api/chat/completions", json={**body, "stream": True},
                      headers=webui.headers, timeout=REQUEST_TIMEOUT) as response:
        assert response.status_code == 200, response.read().decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                chunks.append(line[len("data: "):])
    assert chunks and chunks[-1] == "[DONE]", chunks
    return [json.loads(chunk) for chunk in chunks[:-1]]


def _text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def test_open_webui_verify_list_chat_tools_unload(open_webui: OpenWebUI, echo_server: AgentServer) -> None:
    # the admin "verify connection" button: Open WebUI calls GET /api/version and returns it
    verified = _post(open_webui, "/ollama/verify", {"url": echo_server.url, "key": ""})
    assert verified.status_code == 200, verified.text
    assert all(part.isdigit() for part in verified.json()["version"].split("."))

    # the model picker: GET /api/tags then /api/ps upstream
    models = httpx.get(open_webui.url + "/api/models", params={"refresh": "true"}, headers=open_webui.headers,
                       timeout=REQUEST_TIMEOUT)
    assert models.status_code == 200, models.text
    listed = {m["id"]: m for m in models.json()["data"]}
    assert "echo:latest" in listed, models.text
    assert listed["echo:latest"]["owned_by"] == "ollama" and listed["echo:latest"]["ollama"]["name"] == "echo:latest"
    assert listed["echo:latest"].get("loaded") is True  # from /api/ps

    # a streamed chat: Open WebUI turns the agent's NDJSON into OpenAI SSE chunks
    chunks = _sse(open_webui, {"model": "echo:latest",
                               "messages": [{"role": "user", "content": "hello from open webui"}]})
    assert _text(chunks) == "You said: hello from open webui"
    assert len(chunks) >= 3  # streamed word by word, not in one piece
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop" and last["usage"]["completion_tokens"] == 6

    # a non-streamed chat (the title/follow-up tasks are sent like this): JSON must come back as JSON
    whole = _post(open_webui, "/api/chat/completions", {"model": "echo:latest", "stream": False,
                                                        "messages": [{"role": "user", "content": "/count 3"}]})
    assert whole.status_code == 200, whole.text
    assert whole.json()["choices"][0]["message"]["content"] == "w1 w2 w3"

    # the tool-calling turn: the scripted LLM calls the client tool, which comes back as a tool call
    command = '/tool get_weather {"city": "Paris"}'
    calls = _sse(open_webui, {"model": "echo:latest", "tools": [TOOL],
                              "messages": [{"role": "user", "content": command}]})
    tool_calls = [call for c in calls for call in c["choices"][0]["delta"].get("tool_calls") or []]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in tool_calls] == [
        ("get_weather", {"city": "Paris"})]
    assert calls[-1]["choices"][0]["finish_reason"] == "tool_calls"

    # ... and the result goes back the way Open WebUI sends it (tool_call_id, not tool_name)
    call = tool_calls[0]
    answer = _sse(open_webui, {"model": "echo:latest", "tools": [TOOL], "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"index": 0, "id": call["id"], "type": "function", "function": call["function"]}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]})
    assert _text(answer) == "Tool results: get_weather=sunny"

    # unload from the admin model list: upstream POST /api/generate {"keep_alive": 0, "prompt": ""}
    unloaded = _post(open_webui, "/ollama/api/unload", {"model": "echo:latest"})
    assert unloaded.status_code == 200, unloaded.text
    assert unloaded.json() == {"status": True}

    # every one of those reached the agent server, and Open WebUI logged no upstream error
    # (the access line is written just after the response, so wait for the last one to land)
    expected = ("GET /api/version 200", "GET /api/tags 200", "GET /api/ps 200", "POST /api/chat 200",
                "POST /api/generate 200")
    wait_until(lambda: all(line in echo_server.output() for line in expected), timeout=10,
               what=f"the agent's access log to show {expected}")
    errors = [line for line in open_webui.output().splitlines() if "| ERROR" in line]
    assert not errors, "\n".join(errors)
