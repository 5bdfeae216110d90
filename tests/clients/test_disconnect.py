"""Checklist item 42: concurrent streams are served, and a client that goes away stops the generation.

``/slow 40 0.25`` would keep the scripted LLM busy for ten seconds; ``active_generations`` in
``/atoll/status`` counts agent runs in progress, so it dropping to 0 within a couple of seconds of
the disconnect shows the run was cancelled rather than left to finish.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.clients.helpers import active_generations
from tests.support.servers import AgentServer, run_agent_server, scripted_agent_toml, write_agent
from tests.support.waiting import wait_until

SLOW = "/slow 40 0.25"
STOPPED_WITHIN = 3.0


def _body(path: str, **extra: object) -> dict[str, object]:
    return {"model": "echo", "messages": [{"role": "user", "content": SLOW}], **extra} if path != "/api/generate" \
        else {"model": "echo", "prompt": SLOW, **extra}


def _next_line(lines: Iterator[str]) -> str:
    """The next non-blank line (SSE separates events with blank lines)."""
    return next(line for line in lines if line)


@pytest.mark.parametrize(("path", "extra"), [("/api/chat", {}), ("/api/generate", {}),
                                             ("/v1/chat/completions", {"stream": True}),
                                             ("/v1/completions", {"stream": True, "prompt": SLOW})])
def test_item_42_disconnect_mid_stream_stops_generation(echo_server: AgentServer, path: str,
                                                        extra: dict[str, object]) -> None:
    assert active_generations(echo_server.url) == 0
    with httpx.Client(timeout=10) as client, client.stream("POST", echo_server.url + path,
                                                           json=_body(path, **extra)) as response:
        assert response.status_code == 200
        lines = response.iter_lines()  # kept alive: a dropped iterator closes the connection
        assert "s1" in _next_line(lines)
        assert active_generations(echo_server.url) == 1
    wait_until(lambda: active_generations(echo_server.url) == 0, timeout=STOPPED_WITHIN)


def test_item_42_disconnect_while_waiting_for_a_whole_reply(echo_server: AgentServer) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(echo_server.url + "/v1/chat/completions", json=_body("/v1/chat/completions"), timeout=0.6)
    wait_until(lambda: active_generations(echo_server.url) == 0, timeout=STOPPED_WITHIN)


def test_item_42_two_streams_at_once_are_both_served(echo_server: AgentServer) -> None:
    with ExitStack() as stack:
        client = stack.enter_context(httpx.Client(timeout=10))
        streams = [stack.enter_context(client.stream("POST", echo_server.url + path, json=_body(path, **extra)))
                   for path, extra in (("/api/chat", {}), ("/v1/chat/completions", {"stream": True}))]
        lines = [s.iter_lines() for s in streams]
        assert all("s1" in _next_line(each) for each in lines)
        assert active_generations(echo_server.url) == 2
        assert all("s2" in _next_line(each) for each in lines)
    wait_until(lambda: active_generations(echo_server.url) == 0, timeout=STOPPED_WITHIN)


def test_item_42_disconnect_stops_a_tool_call_in_flight(echo_server: AgentServer, tmp_path: Path) -> None:
    """The parent agent's tool is a child agent (the echo server) busy with a slow task; leaving the
    parent mid-call must cancel the call, which ends the child's generation too."""
    parent = write_agent(tmp_path, scripted_agent_toml(
        "parent", extra=f'[sub_agents.child]\nurl = "{echo_server.url}"\ndescription = "slow helper"\n'))
    command = "/tool ask_child " + json.dumps({"task": SLOW})
    with run_agent_server(parent, cwd=tmp_path) as parent_server:
        body = {"model": "parent", "messages": [{"role": "user", "content": command}]}
        with httpx.Client(timeout=10) as client, client.stream("POST", parent_server.url + "/api/chat",
                                                               json=body) as response:
            lines = response.iter_lines()
            assert json.loads(_next_line(lines))["atoll"]["event"] == "tool_call"
            wait_until(lambda: active_generations(echo_server.url) == 1, timeout=STOPPED_WITHIN)
            assert active_generations(parent_server.url) == 1
        wait_until(lambda: active_generations(parent_server.url) == 0, timeout=STOPPED_WITHIN)
        wait_until(lambda: active_generations(echo_server.url) == 0, timeout=STOPPED_WITHIN)
