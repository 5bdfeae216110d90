"""The deployment server with real agent servers on 127.0.0.1: ports, front door, kill -9, stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from pathlib import Path

import anyio
import psutil
import pytest

from atoll.deploy.logs import log_paths, tail
from atoll.deploy.runner import FAILED, RUNNING
from tests.deploy.conftest import alive, make_config, running_server, write_agent
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio


async def test_ports_front_door_streaming_and_kill_9(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "alpha")
    write_agent(agents, "beta")
    config = make_config()
    with socket.socket() as taken:  # the second port is busy: beta must skip it
        taken.bind(("127.0.0.1", config.base_port + 1))
        taken.listen()
        async with running_server(agents, config) as run:
            alpha, beta = run.runner("alpha"), run.runner("beta")
            assert (alpha.state, beta.state) == (RUNNING, RUNNING)
            assert (alpha.port, beta.port) == (config.base_port, config.base_port + 2)

            tags = (await run.client.get("/api/tags")).json()
            assert sorted(m["name"] for m in tags["models"]) == ["alpha:latest", "beta:latest"]
            version = (await run.client.get("/api/version")).json()["version"]
            assert tuple(int(p) for p in version.split(".")) >= (0, 6, 4)  # clients such as Copilot gate on it

            reply = await run.client.post("/api/chat", json={
                "model": "beta", "stream": False, "messages": [{"role": "user", "content": "hello"}]})
            assert reply.status_code == 200
            assert reply.json()["message"]["content"] == "You said: hello"

            await _streams_chunk_by_chunk(run.client)

            missing = await run.client.post("/api/generate", json={"model": "nope", "prompt": "x"})
            assert missing.status_code == 404 and "nope" in missing.json()["error"]

            old_pid, old_port = alpha.proc.pid, alpha.port  # type: ignore[union-attr]
            os.kill(old_pid, signal.SIGKILL)
            killed_at = time.monotonic()
            await wait_until_async(lambda: alpha.state != RUNNING, timeout=20)
            await wait_until_async(
                lambda: alpha.state == RUNNING and alpha.proc is not None and alpha.proc.pid != old_pid, timeout=20)
            respawned_at = next(t for t, state in reversed(alpha.history) if state == "starting")
            assert respawned_at - killed_at <= 1.0, "crash detection + first backoff must fit in 1 s"
            assert alpha.port == old_port and alpha.restarts == 1
            assert alpha.last_exit_code == -signal.SIGKILL
            status = (await run.client.get("/agents/alpha")).json()
            assert status["status"] == "running" and status["port"] == old_port and status["restarts"] == 1


async def _streams_chunk_by_chunk(client) -> None:  # type: ignore[no-untyped-def]
    """Lines of a slow reply must arrive as they are produced, not all at the end."""
    arrivals: list[float] = []
    body = {"model": "alpha:latest", "messages": [{"role": "user", "content": "/slow 4 0.4"}]}
    async with client.stream("POST", "/api/chat", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        async for line in response.aiter_lines():
            if line.strip():
                json.loads(line)
                arrivals.append(time.monotonic())
    assert len(arrivals) >= 4
    assert arrivals[-1] - arrivals[0] > 0.8, "the reply was buffered instead of streamed"


HANGING_AGENT = r"""
import http.server, signal, socket, subprocess, sys, threading
signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'{"status":"healthy"}')
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health, bind_and_activate=False)
server.socket = socket.socket(fileno=int(sys.argv[1]))  # the probe socket the supervisor passed
server.serve_forever()
"""


async def test_stop_kills_the_whole_group_even_when_sigterm_is_ignored(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "stubborn")
    script = tmp_path / "hang.py"
    script.write_text(HANGING_AGENT)
    config = make_config(stop_timeout=1.0)

    def command(spec, launch):  # type: ignore[no-untyped-def]
        return [os.sys.executable, str(script), str(launch.fd)]  # type: ignore[attr-defined]

    async with running_server(agents, config, command_for=command) as run:
        runner = run.runner("stubborn")
        assert runner.state == RUNNING
        leader = psutil.Process(runner.proc.pid)  # type: ignore[union-attr]
        await wait_until_async(lambda: len(leader.children(recursive=True)) >= 1, timeout=20)
        tree = [leader, *leader.children(recursive=True)]
        started = time.monotonic()
        response = await run.client.post("/agents/stubborn/stop")
        assert response.status_code == 200 and response.json()["status"] == "stopped"
        assert time.monotonic() - started >= 1.0  # it waited out the grace period first
        assert alive(tree) == []
        assert runner.last_exit_code == -signal.SIGKILL


async def test_real_agent_stops_gracefully_and_leaves_nothing(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "polite")
    async with running_server(agents) as run:
        runner = run.runner("polite")
        leader = psutil.Process(runner.proc.pid)  # type: ignore[union-attr]
        tree = [leader, *leader.children(recursive=True)]
        assert (await run.client.post("/agents/polite/stop")).json()["status"] == "stopped"
        assert alive(tree) == []
        assert runner.last_exit_code == 0
        listed = (await run.client.get("/api/tags")).json()["models"]
        assert listed == []
        routed = await run.client.post("/api/chat", json={"model": "polite", "messages": []})
        assert routed.status_code == 503
        started = await run.client.post("/agents/polite/start")
        assert started.status_code == 200 and started.json()["status"] == "running"
        second = psutil.Process(runner.proc.pid)  # type: ignore[union-attr]
    assert alive([second]) == []  # leaving the server stops every agent


async def test_crash_loop_ends_failed_with_exit_code_and_log_tail(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "crasher")
    config = make_config(max_restarts=2, backoff_initial=0.05)

    def command(spec, launch):  # type: ignore[no-untyped-def]
        return [os.sys.executable, "-c",  # type: ignore[attr-defined]
                "import sys; print('cannot start: missing thing', file=sys.stderr); sys.exit(3)"]

    async with running_server(agents, config, command_for=command) as run:
        runner = run.runner("crasher")
        assert runner.state == FAILED
        body = (await run.client.get("/agents/crasher")).json()
        assert body["status"] == "failed" and body["last_exit_code"] == 3 and body["restarts"] == 2
        assert "exited with code 3" in body["error_message"]
        assert any("cannot start: missing thing" in line for line in body["log_tail"])
        logs = (await run.client.get("/agents/crasher/logs", params={"lines": 2})).json()
        assert logs["stderr"] == ["cannot start: missing thing"] * 2
        again = await run.client.post("/agents/crasher/start")
        assert again.status_code == 500 and again.json()["error_code"] == "AGENT_START_FAILED"


async def test_errors_and_conflicting_commands(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "solo")
    async with running_server(agents) as run:
        missing = await run.client.get("/agents/ghost")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "Agent not found: ghost", "error_code": "AGENT_NOT_FOUND"}
        bad_lines = await run.client.get("/agents/solo/logs", params={"lines": "lots"})
        assert bad_lines.status_code == 400 and bad_lines.json()["error_code"] == "INVALID_REQUEST"
        pid = run.runner("solo").proc.pid  # type: ignore[union-attr]
        already = await run.client.post("/agents/solo/start")  # idempotent, like stop
        assert already.status_code == 200 and already.json()["status"] == "running"
        assert already.json()["pid"] == pid  # not restarted

        restart, stop = await asyncio.gather(run.client.post("/agents/solo/restart"),
                                             _soon(run.client.post("/agents/solo/stop")))
        assert restart.status_code == 200
        assert stop.status_code == 409 and stop.json()["error_code"] == "AGENT_BUSY"

        serving = psutil.Process(run.runner("solo").proc.pid)  # type: ignore[union-attr]
        stopped = await run.client.post("/agents/solo/stop")
        again = await run.client.post("/agents/solo/stop")  # already stopped: it stays so, as start is idempotent
        for answer in (stopped, again):
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "stopped" and answer.json()["pid"] is None
        assert again.json() == stopped.json()  # the second stop changed nothing
        assert not alive([serving])

        deleted = await run.client.delete("/agents/solo")
        assert deleted.status_code == 200
        assert (await run.client.get("/agents/solo")).status_code == 404
        assert not (agents / "solo").exists()


async def _soon(coro):  # type: ignore[no-untyped-def]
    await anyio.sleep(0.2)
    return await coro


async def test_front_door_routes_show_and_embeddings_to_the_named_agent(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "left")
    write_agent(agents, "right")
    async with running_server(agents) as run:
        async def call(path: str, body: dict[str, object], rid: str) -> dict[str, object]:
            response = await run.client.post(path, json=body, headers={"X-Request-ID": rid})
            assert response.status_code == 200, response.text
            return response.json()

        shown = await call("/api/show", {"model": "RIGHT:latest"}, "show-right")  # matched as Ollama does
        assert shown["details"]["family"] == "scripted"
        await call("/api/show", {"name": "left"}, "show-left")
        vectors = (await call("/api/embed", {"model": "left", "input": ["one", "two"]}, "embed-left"))["embeddings"]
        assert len(vectors) == 2 and all(len(v) == 8 for v in vectors) and vectors[0] != vectors[1]
        legacy = await call("/api/embeddings", {"model": "right", "prompt": "one"}, "embed-right")
        assert legacy["embedding"] == vectors[0]  # the scripted provider is deterministic

        # Each agent's own access log names exactly the requests routed to it.
        def seen(agent: str) -> set[str]:
            lines = tail(log_paths(run.server.logs_dir, agent)["stderr"], 500)
            return {rid for rid in ("show-right", "show-left", "embed-left", "embed-right")
                    if any(rid in line for line in lines)}

        await wait_until_async(lambda: seen("left") == {"show-left", "embed-left"} and
                               seen("right") == {"show-right", "embed-right"}, timeout=20)

        unknown = await run.client.post("/api/embed", json={"model": "nobody", "input": "x"})
        assert unknown.status_code == 404 and "nobody" in unknown.json()["error"]
