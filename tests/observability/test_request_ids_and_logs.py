"""``X-Request-ID`` on every response, and log lines (text or JSON) that carry it: one access line
per request with route, status, duration, model and session, plus whatever else the request logged."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.servers import AgentServer, run_agent_server, scripted_agent_toml, write_agent


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    folder = tmp_path_factory.mktemp("json-logs")
    agent = write_agent(folder, scripted_agent_toml("echo", extra='[server]\nsession_store = "memory"\n'))
    with run_agent_server(agent, cwd=folder, args=["--log-format", "json"]) as server:
        yield server


def log_records(server: AgentServer, request_id: str, timeout: float = 10) -> list[dict]:
    """The JSON log lines about one request, once its access line has been written."""
    deadline = time.monotonic() + timeout
    while True:
        records = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
        mine = [r for r in records if r.get("request_id") == request_id]
        if any(r["logger"] == "atoll.access" for r in mine) or time.monotonic() > deadline:
            return mine
        time.sleep(0.02)


def test_request_id_is_echoed_or_made_up(echo_server: AgentServer) -> None:
    given = httpx.get(echo_server.url + "/api/tags", headers={"X-Request-ID": "trace-42.a:b"})
    assert given.headers["x-request-id"] == "trace-42.a:b"
    made = httpx.get(echo_server.url + "/api/tags").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    unsafe = httpx.get(echo_server.url + "/api/tags", headers={"X-Request-ID": "evil\tid\" injected"})
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["x-request-id"])


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/", 200),                  # Ollama's liveness text
    ("GET", "/no/such/route", 404),     # no route at all
    ("POST", "/api/chat", 400),         # the body "{not json" is not JSON
    ("DELETE", "/api/version", 405),    # a route, but not for this method
])
def test_every_response_carries_one(echo_server: AgentServer, method: str, path: str, status: int) -> None:
    response = httpx.request(method, echo_server.url + path, content=b"{not json")
    assert response.status_code == status, response.text
    assert len(response.headers.get_list("x-request-id")) == 1


def test_streamed_responses_carry_it_and_still_flow(echo_server: AgentServer) -> None:
    with httpx.stream("POST", echo_server.url + "/api/chat", headers={"X-Request-ID": "stream-1"}, json={
            "model": "echo", "messages": [{"role": "user", "content": "/count 4"}]}) as response:
        assert response.headers["x-request-id"] == "stream-1"
        assert len(list(response.iter_lines())) == 5


def test_text_access_line(echo_server: AgentServer) -> None:
    rid = uuid.uuid4().hex
    httpx.post(echo_server.url + "/api/chat", headers={"X-Request-ID": rid, "X-Session-ID": "s-text"},
               json={"model": "echo", "stream": False, "messages": [{"role": "user", "content": "hi"}]})
    deadline = time.monotonic() + 10
    while rid not in echo_server.output() and time.monotonic() < deadline:
        time.sleep(0.02)
    line = next(line for line in echo_server.output().splitlines() if rid in line)
    assert "atoll.access" in line and "POST /api/chat 200" in line
    assert "route=/api/chat" in line and "model=echo" in line and "session=s-text" in line


def test_json_access_line(json_server: AgentServer) -> None:
    rid = f"json-{uuid.uuid4().hex[:8]}"
    response = httpx.post(json_server.url + "/api/chat", headers={"X-Request-ID": rid, "X-Session-ID": "s-json"},
                          json={"model": "echo", "stream": False, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    access = [r for r in log_records(json_server, rid) if r["logger"] == "atoll.access"]
    assert len(access) == 1
    line = access[0]
    assert line["level"] == "INFO" and line["time"]
    assert (line["method"], line["path"], line["route"], line["status"]) == ("POST", "/api/chat", "/api/chat", 200)
    assert line["model"] == "echo" and line["session"] == "s-json"
    assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0


def test_every_json_line_about_a_request_carries_its_id(json_server: AgentServer) -> None:
    rid = f"fail-{uuid.uuid4().hex[:8]}"
    response = httpx.post(json_server.url + "/api/chat", headers={"X-Request-ID": rid}, json={
        "model": "echo", "stream": False, "messages": [{"role": "user", "content": "/error upstream exploded"}]})
    assert response.status_code >= 500
    records = log_records(json_server, rid)
    assert {r["logger"] for r in records} >= {"atoll.access", "atoll.server.errors"}
    assert any("upstream exploded" in r["message"] for r in records if r["logger"] != "atoll.access")
    # Lines outside any request say so.
    startup = [json.loads(line) for line in json_server.output().splitlines() if line.startswith("{")]
    assert any(r["request_id"] == "-" and "ready" in r["message"] for r in startup)


def test_a_path_cannot_forge_log_lines(echo_server: AgentServer) -> None:
    rid = uuid.uuid4().hex
    httpx.get(echo_server.url + "/api/x%0A2026-01-01%20INFO%20forged", headers={"X-Request-ID": rid})
    deadline = time.monotonic() + 10
    while rid not in echo_server.output() and time.monotonic() < deadline:
        time.sleep(0.02)
    line = next(line for line in echo_server.output().splitlines() if rid in line)
    assert "/api/x%0A2026-01-01%20INFO%20forged 404" in line
    assert not any(line.startswith("2026-01-01 INFO forged") for line in echo_server.output().splitlines())
