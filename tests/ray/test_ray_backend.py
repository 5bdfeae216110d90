"""``atoll --backend ray`` on a real Ray cluster (see conftest.py): the official ``ollama`` and ``openai``
clients through the Serve ingress, sessions across replicas, autoscaling, a killed replica, a zip
redeploy, and the management API and ``atoll status`` on this backend.

The tests share one deployment server and run in this file's order (the last one redeploys ``echo``).
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
import httpx
import ollama
import openai
import psutil
import pytest

from tests.ray.conftest import ECHO, OTHER_KEY, RayFleet
from tests.support.servers import server_env
from tests.support.waiting import wait_until

pytestmark = pytest.mark.ray

REPLICA_HEADER = "X-Atoll-Replica"


def test_the_official_clients_list_every_agent_and_reach_each_by_model_name(ray_fleet: RayFleet) -> None:
    client = ollama.Client(host=ray_fleet.ingress)
    assert sorted(m.model for m in client.list().models) == ["echo:latest", "other:latest"]
    with pytest.raises(ollama.ResponseError) as refused:  # the agent's own API key, checked by the agent
        client.chat(model="other", messages=[{"role": "user", "content": "/system"}])
    assert refused.value.status_code == 401
    keyed = ollama.Client(host=ray_fleet.ingress, headers={"Authorization": f"Bearer {OTHER_KEY}"})
    answer = keyed.chat(model="other", messages=[{"role": "user", "content": "/system"}])
    assert answer.message.content == "You are other."
    streamed = [part.message.content for part in
                client.chat(model="echo", messages=[{"role": "user", "content": "/count 4"}], stream=True)]
    assert "".join(streamed) == "w1 w2 w3 w4" and len(streamed) > 1
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model="nobody", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.status_code == 404 and "this server serves: echo, other" in str(missing.value)

    with openai.OpenAI(base_url=f"{ray_fleet.ingress}/v1", api_key=OTHER_KEY, max_retries=0) as oa:
        assert sorted(m.id for m in oa.models.list()) == ["echo:latest", "other:latest"]
        chunks = oa.chat.completions.create(model="other", stream=True,
                                            messages=[{"role": "user", "content": "/count 3"}])
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "w1 w2 w3"
        with pytest.raises(openai.NotFoundError):
            oa.chat.completions.create(model="nobody", messages=[{"role": "user", "content": "hi"}])

    health = httpx.get(f"{ray_fleet.ingress}/agent/echo/health", timeout=30)
    assert health.status_code == 200 and health.headers[REPLICA_HEADER]


def test_the_management_api_and_atoll_status_show_serve_s_replicas(ray_fleet: RayFleet) -> None:
    assert httpx.get(f"{ray_fleet.api}/agents", timeout=30).status_code == 401
    listed = httpx.get(f"{ray_fleet.api}/agents", headers=ray_fleet.admin, timeout=30).json()
    agents = {a["name"]: a for a in listed["agents"]}
    assert {n: (a["status"], a["replicas"]["running"]) for n, a in agents.items()} == \
        {"echo": ("running", 2), "other": ("running", 1)}
    (refused,) = listed["problems"]
    assert refused["folder"].endswith("solo") and "deployment.replicas" in refused["reason"]
    assert 'session_store = "sqlite"' in refused["reason"] and "loses its history" in refused["reason"]
    status = subprocess.run([sys.executable, "-m", "atoll", "status", "--url", ray_fleet.api], capture_output=True,
                            text=True, timeout=60, env=server_env(ATOLL_HOME=str(ray_fleet.home)))
    assert status.returncode == 0, status.stderr
    rows = [line.split() for line in status.stdout.splitlines() if line.split()[:1] in (["echo"], ["other"])]
    assert [(r[0], r[3]) for r in rows] == [("echo", "running"), ("other", "running")]
    logs = httpx.get(f"{ray_fleet.api}/agents/echo/logs?lines=5", headers=ray_fleet.admin, timeout=30)
    assert logs.status_code == 200 and len(logs.json()["stderr"]) <= 5


def test_a_session_continues_on_another_replica_with_its_whole_history(ray_fleet: RayFleet) -> None:
    turns: list[str] = []
    replicas: set[str] = set()
    session = {"X-Session-ID": f"ray-{uuid.uuid4().hex}"}
    with httpx.Client(base_url=ray_fleet.ingress, timeout=60, headers=session) as http:
        while len(replicas) < 2:
            assert len(turns) < 60, f"60 turns all answered by {replicas}"
            turns.append(f"turn {len(turns)}")
            answer = http.post("/api/chat", json={
                "model": "echo", "stream": False, "messages": [{"role": "user", "content": turns[-1]}]})
            assert answer.status_code == 200, answer.text
            replicas.add(answer.headers[REPLICA_HEADER])
        history = http.post("/api/chat", json={
            "model": "echo", "stream": False, "messages": [{"role": "user", "content": "/history"}]})
    said = [part.removeprefix("user:") for part in history.json()["message"]["content"].split(" | ")
            if part.startswith("user:")]
    assert said[:-1] == turns and said[-1] == "/history"


async def test_load_scales_an_agent_up_and_every_request_is_answered(ray_fleet: RayFleet) -> None:
    assert ray_fleet.running_replicas("other") == 1
    answers: list[int] = []

    async def slow_chat(http: httpx.AsyncClient) -> None:
        response = await http.post("/api/chat", json={
            "model": "other", "stream": False, "messages": [{"role": "user", "content": "/slow 40 0.5"}]})
        answers.append(response.status_code)

    async with httpx.AsyncClient(base_url=ray_fleet.ingress, timeout=120,
                                 headers={"Authorization": f"Bearer {OTHER_KEY}"}) as http, \
            anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(slow_chat, http)
        await anyio.to_thread.run_sync(lambda: wait_until(
            lambda: ray_fleet.running_replicas("other") == 2, timeout=60, what="a second replica of 'other'",
            interval=0.5))
    assert answers == [200] * 4


@dataclass
class Traffic:
    """Chats sent one after another to ``echo`` until stopped: what each answered and by which replica."""

    results: list[tuple[float, int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def since(self, moment: float) -> list[tuple[float, int, str]]:
        return [r for r in self.results if r[0] >= moment]

    @staticmethod
    def replicas(results: list[tuple[float, int, str]]) -> set[str]:
        """The replicas that answered (200) among ``results``."""
        return {r[2] for r in results if r[1] == 200}


@contextmanager
def steady_traffic(fleet: RayFleet, content: str = "hi") -> Iterator[Traffic]:
    traffic, stop = Traffic(), threading.Event()

    def send() -> None:
        with httpx.Client(base_url=fleet.ingress, timeout=60) as http:
            while not stop.is_set():
                try:
                    response = http.post("/api/chat", json={
                        "model": "echo", "stream": False, "messages": [{"role": "user", "content": content}]})
                    traffic.results.append((time.monotonic(), response.status_code,
                                            response.headers.get(REPLICA_HEADER, "")))
                except httpx.HTTPError as exc:
                    traffic.errors.append(repr(exc))

    sender = threading.Thread(target=send)
    sender.start()
    try:
        yield traffic
    finally:
        stop.set()
        sender.join(60)


def _replica_processes(fleet: RayFleet, app: str) -> list[psutil.Process]:
    """The replicas of ``app`` in the fleet's own cluster (its head is the server's child; other Ray
    clusters on this machine may run an ``echo`` too)."""
    found = []
    for proc in psutil.Process(fleet.process.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if f"ServeReplica:{app}:agent" in " ".join(proc.cmdline()):
                found.append(proc)
    return found


def test_a_killed_replica_is_replaced_while_the_other_keeps_answering(ray_fleet: RayFleet) -> None:
    victims = _replica_processes(ray_fleet, "echo")
    assert len(victims) == 2, victims
    with steady_traffic(ray_fleet) as traffic:
        wait_until(lambda: len(traffic.replicas(traffic.results)) == 2, timeout=60, what="both replicas answering")
        killed = time.monotonic()
        before = list(traffic.results)
        victims[0].kill()
        wait_until(lambda: traffic.replicas(traffic.since(killed)) - traffic.replicas(before), timeout=90,
                   what="a new replica of 'echo' answering")
    assert all(r[1] == 200 for r in before), before
    after_kill = traffic.since(killed)
    failed = [r for r in after_kill if r[1] != 200]
    # At most the one chat that was inside the killed process when it died fails; the rest are answered.
    assert len(failed) <= 1 and not traffic.errors, (failed, traffic.errors)
    assert len(after_kill) - len(failed) >= 5
    assert ray_fleet.running_replicas("echo") == 2


def _package(toml: str) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("agent.toml", toml)
    return data.getvalue()


def test_a_zip_redeploy_rolls_out_a_new_version_without_a_failed_request(ray_fleet: RayFleet) -> None:
    new_version = ECHO.replace("You are echo.", "You are echo, version 2.")
    with steady_traffic(ray_fleet, "/system") as traffic:
        wait_until(lambda: len(traffic.results) >= 3, timeout=60, what="traffic flowing")
        old = {r[2] for r in traffic.results}
        deployed = httpx.post(f"{ray_fleet.api}/agents/deploy", headers=ray_fleet.admin, timeout=300,
                              files={"file": ("echo.zip", _package(new_version), "application/zip")})
        assert deployed.status_code == 200, deployed.text
        rolled = time.monotonic()
        wait_until(lambda: len(traffic.since(rolled)) >= 5, timeout=60, what="traffic after the rollout")
    assert not traffic.errors and all(r[1] == 200 for r in traffic.results), \
        ([r for r in traffic.results if r[1] != 200], traffic.errors)
    assert not {r[2] for r in traffic.since(rolled)} & old  # only new replicas answer now
    answer = ollama.Client(host=ray_fleet.ingress).chat(model="echo", messages=[{"role": "user", "content": "/system"}])
    assert answer.message.content == "You are echo, version 2."
