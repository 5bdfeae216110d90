"""Rate limits (429 + Retry-After, then allowed again), concurrent generations, body size (413)
and the per-request timeout (504), against real server processes."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import KEY_A, KEY_B, bearer, start
from tests.support.servers import AgentServer
from tests.support.waiting import wait_until


def chat_body(text: str, *, stream: bool = False) -> dict:
    return {"model": "echo", "stream": stream, "messages": [{"role": "user", "content": text}]}


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    """Three requests per 3 s per key: a burst of three, then one a second."""
    folder = tmp_path_factory.mktemp("limited")
    yield from start(folder, f'api_keys = ["{KEY_A}", "{KEY_B}"]\nsession_store = "memory"\n'
                             "rate_limit_per_minute = 3\nrate_limit_window_s = 3.0\n")


@pytest.fixture(scope="module")
def bounded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    """One generation at a time per key, 4 KiB bodies, 3 s per request."""
    folder = tmp_path_factory.mktemp("bounded")
    yield from start(folder, f'api_keys = ["{KEY_A}", "{KEY_B}"]\nsession_store = "memory"\n'
                             "max_concurrent_generations = 1\nmax_body_bytes = 4096\nrequest_timeout = 3\n")


def refused(server: AgentServer, key: str, path: str = "/api/tags",
            body: dict | None = None) -> tuple[httpx.Response, float]:
    """Spend ``key``'s allowance until the server refuses a request; that refusal, and the
    monotonic time just before it was sent (so before the server decided to refuse it)."""
    for _ in range(10):
        sent_at = time.monotonic()
        response = httpx.request("POST" if body else "GET", server.url + path, headers=bearer(key), json=body)
        if response.status_code == 429:
            return response, sent_at
        assert response.status_code == 200
    raise AssertionError("never rate limited")


def test_over_the_rate_limit_then_allowed_again(limited_server: AgentServer) -> None:
    response, sent_at = refused(limited_server, KEY_A)
    assert response.headers["retry-after"] == "1"
    assert "rate limit" in response.json()["error"] and response.json()["detail"]
    told = re.fullmatch(r"rate limit exceeded: retry in (\d+\.\d) s", response.json()["error"])
    assert told, response.json()["error"]
    wait_s = float(told[1])  # the server's own figure, to 0.1 s
    assert 0 < wait_s <= 1.0  # one request a second once the burst of three is spent
    # Limits are per key, and probes are never limited.
    assert httpx.get(limited_server.url + "/api/tags", headers=bearer(KEY_B)).status_code == 200
    assert all(httpx.get(limited_server.url + "/health").status_code == 200 for _ in range(5))
    # Allowed again, and not before the server said: the refusal was decided after ``sent_at``, so
    # the first success cannot come sooner than ``wait_s`` (less its rounding) after it. Refused
    # polls do not spend the allowance. The upper bound is only the generous deadline of the wait.
    wait_until(lambda: httpx.get(limited_server.url + "/api/tags", headers=bearer(KEY_A)).status_code == 200,
               timeout=wait_s + 15, what="KEY_A allowed again")
    assert time.monotonic() - sent_at >= wait_s - 0.05


def test_openai_routes_are_limited_in_openai_shape(limited_server: AgentServer) -> None:
    response, _ = refused(limited_server, KEY_B, "/v1/chat/completions",
                       {"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
    assert response.headers["retry-after"]
    assert "rate limit" in response.json()["error"]["message"]


def test_one_generation_at_a_time(bounded_server: AgentServer) -> None:
    first_line = threading.Event()
    lines: list[dict] = []

    def slow_stream() -> None:
        with httpx.stream("POST", bounded_server.url + "/api/chat", headers=bearer(KEY_A), timeout=10,
                          json=chat_body("/slow 6 0.3", stream=True)) as response:
            for line in response.iter_lines():
                lines.append(json.loads(line))
                first_line.set()

    worker = threading.Thread(target=slow_stream)
    worker.start()
    try:
        assert first_line.wait(10)
        busy = httpx.post(bounded_server.url + "/api/chat", headers=bearer(KEY_A), json=chat_body("hi"))
        assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
        assert "concurrent generations" in busy.json()["error"]
        # Another key has its own allowance.
        other = httpx.post(bounded_server.url + "/api/chat", headers=bearer(KEY_B), json=chat_body("hi"))
        assert other.status_code == 200, other.text
    finally:
        worker.join(10)
    assert lines[-1]["done"] is True  # the stream that held the slot flowed to its end
    # The slot is given back once the first response has gone out.
    wait_until(lambda: httpx.post(bounded_server.url + "/api/chat", headers=bearer(KEY_A),
                                  json=chat_body("again")).status_code == 200, timeout=10, what="the slot back")


def test_oversized_body_is_413(bounded_server: AgentServer) -> None:
    big = chat_body("x" * 5000)
    declared = httpx.post(bounded_server.url + "/api/chat", headers=bearer(KEY_B), json=big)
    assert declared.status_code == 413
    assert "4096 bytes" in declared.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server has to count
        payload = json.dumps(big).encode()
        for offset in range(0, len(payload), 1000):
            yield payload[offset:offset + 1000]

    streamed = httpx.post(bounded_server.url + "/api/chat", headers=bearer(KEY_B), content=chunks())
    assert streamed.status_code == 413 and "too large" in streamed.json()["error"]


def test_slow_request_is_504_then_a_stream_ends_with_an_error_line(bounded_server: AgentServer) -> None:
    # The generation would take 60 x 0.5 = 30 s; the server's 3 s timeout has to cut it. Only
    # order is asserted: not before the 3 s the server reports, and long before the 30 s.
    started = time.monotonic()
    response = httpx.post(bounded_server.url + "/api/chat", headers=bearer(KEY_B), timeout=60,
                          json=chat_body("/slow 60 0.5"))
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"] == "request timed out after 3 s (server.request_timeout)"
    assert 3 <= elapsed < 30 - 10
    with httpx.stream("POST", bounded_server.url + "/api/chat", headers=bearer(KEY_B), timeout=10,
                      json=chat_body("/slow 10 0.5", stream=True)) as stream:
        assert stream.status_code == 200
        lines = [json.loads(line) for line in stream.iter_lines()]
    assert lines[0]["message"]["content"] and lines[-1] == {"error": "request timed out after 3 s "
                                                                     "(server.request_timeout)"}
    # The generation was cancelled and its slot given back.
    wait_until(lambda: httpx.post(bounded_server.url + "/api/chat", headers=bearer(KEY_B),
                                  json=chat_body("hi")).status_code == 200, timeout=10, what="the slot back")


def test_an_openai_stream_that_runs_out_of_time_ends_with_an_error_event(bounded_server: AgentServer) -> None:
    with httpx.stream("POST", bounded_server.url + "/v1/chat/completions", headers=bearer(KEY_A), timeout=10,
                      json={"model": "echo", "stream": True,
                            "messages": [{"role": "user", "content": "/slow 10 0.5"}]}) as stream:
        assert stream.status_code == 200
        events = [line.removeprefix("data: ") for line in stream.iter_lines() if line.startswith("data: ")]
    assert "[DONE]" not in events
    assert json.loads(events[-1])["error"]["message"] == "request timed out after 3 s (server.request_timeout)"


def test_without_keys_limits_apply_per_client_address(tmp_path: Path) -> None:
    for server in start(tmp_path, 'session_store = "memory"\nrate_limit_per_minute = 2\n'):
        codes = [httpx.get(server.url + "/api/tags").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert httpx.get(server.url + "/api/version").status_code == 200
