"""An agent whose LLM is an Ollama server (here another atoll agent, the scripted one): the reply
comes through, and upstream failures reach the client as clean errors naming the upstream."""

from __future__ import annotations

from pathlib import Path

import httpx
import ollama
import pytest

from tests.support.servers import AgentServer, free_port, run_agent_server, write_agent


def agent_on(upstream: str, model: str = "echo") -> str:
    return f'[agent]\nname = "front"\n[llm]\nprovider = "ollama"\nbase_url = "{upstream}"\nmodel = "{model}"\n' \
           "request_timeout = 10\n"


def test_reply_comes_through_an_ollama_upstream(echo_server: AgentServer, tmp_path: Path) -> None:
    with run_agent_server(write_agent(tmp_path, agent_on(echo_server.url)), cwd=tmp_path) as front:
        reply = ollama.Client(host=front.url).chat(model="front", messages=[{"role": "user", "content": "relay"}])
        assert reply.message.content == "You said: relay"
        status = httpx.get(front.url + "/atoll/status").json()["llm"]
        assert status == {"provider": "ollama", "model": "echo", "base_url": echo_server.url, "reachable": True,
                          "error": None, "calls_tools": True}


def test_unknown_upstream_model_gives_the_upstreams_message(echo_server: AgentServer, tmp_path: Path) -> None:
    with run_agent_server(write_agent(tmp_path, agent_on(echo_server.url, "llama9")), cwd=tmp_path) as front:
        response = httpx.post(front.url + "/api/chat", json={
            "model": "front", "stream": False, "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 404 and "llama9" in response.json()["error"]


@pytest.mark.parametrize("stream", [False, True])
def test_unreachable_upstream_is_a_502_naming_it(tmp_path: Path, stream: bool) -> None:
    gone = f"http://127.0.0.1:{free_port()}"
    with run_agent_server(write_agent(tmp_path, agent_on(gone)), cwd=tmp_path) as front:
        response = httpx.post(front.url + "/api/chat", json={
            "model": "front", "stream": stream, "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 502, response.text
    assert "127.0.0.1:" + gone.rsplit(":", 1)[1] in response.json()["error"]
    assert "Traceback" not in response.text
