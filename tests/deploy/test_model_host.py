"""Agents on the embedded model share one model host under the deployment server, all real
processes with the real SmolLM2: one process maps the model, every agent answers through it, a
killed host is restarted (the next request answers), a SIGKILLed deployment server adopts it with
its agents, and the deployment server itself never loads llama.cpp. The dashboard (headless Chromium)
shows the host with its agents, and its new pid live after the kill."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import ollama
import psutil
import pytest
from playwright.sync_api import Page, expect

from tests.deploy.test_adoption import Fleet, fleet
from tests.support.browser import chromium, screenshot_path
from tests.support.waiting import wait_until

pytestmark = pytest.mark.model

LOCAL_AGENT = """\
[agent]
name = "{name}"
[llm]
provider = "local"
max_tokens = 6
temperature = 0
# one llama.cpp thread: two threads spin against each other on a loaded 2-core machine (tests/conftest.py)
[llm.extra]
n_threads = 1
[server]
session_store = "memory"
drain_timeout = 1
"""


def mapped(pid: int, suffix: str) -> bool:
    """Whether process ``pid`` maps a file whose name ends with ``suffix``."""
    return any(m.path.endswith(suffix) for m in psutil.Process(pid).memory_maps(grouped=True))


def listing(run: Fleet) -> dict[str, Any]:
    response = httpx.get(f"{run.url}/agents", headers=run.headers(), timeout=10, trust_env=False)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def the_host(run: Fleet, **expected: Any) -> dict[str, Any]:
    """The one model host, once it is running and shows ``expected``."""
    def ready() -> dict[str, Any] | None:
        try:
            hosts = listing(run)["model_hosts"]
        except httpx.HTTPError:
            return None
        if len(hosts) == 1 and hosts[0]["status"] == "running" and \
                all(hosts[0].get(k) == v for k, v in expected.items()):
            return dict(hosts[0])
        return None

    wait_until(ready, timeout=90, what=f"one running model host with {expected} ({run.log()[-400:]})")
    return ready() or {}


def answers(run: Fleet, agent: str) -> str:
    client = ollama.Client(host=run.url, timeout=120)
    reply = client.chat(model=agent, messages=[{"role": "user", "content": "Say hello."}])
    assert reply.done and 0 < (reply.eval_count or 0) <= 6
    return reply.message.content or ""


def first_snapshot(run: Fleet) -> dict[str, Any]:
    """The first event of the dashboard's live stream (``GET /agents/events``): what the page draws."""
    with httpx.stream("GET", f"{run.url}/agents/events", headers=run.headers(), timeout=10,
                      trust_env=False) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(lines) == "event: snapshot"
        data = next(lines)
        assert data.startswith("data: ")
        body: dict[str, Any] = json.loads(data[6:])
        return body


def signed_in_page(page: Page, run: Fleet) -> None:
    page.goto(f"{run.url}/ui")
    page.get_by_label("Admin token").fill(run.headers()["Authorization"].removeprefix("Bearer "))
    page.get_by_role("button", name="Sign in", exact=True).click()


def host_processes(home: Path) -> list[psutil.Process]:
    """The model host processes of the deployment server on ``home`` (by command line)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "model-host" in cmdline and any(str(home) in part for part in cmdline):
            found.append(proc)
    return found


@pytest.mark.browser
def test_two_local_agents_share_one_model_host_that_survives_kills(tmp_path: Path) -> None:
    with fleet(tmp_path, {"health_check_interval": 0.5}, {}) as run:
        for name in ("alpha", "beta"):
            (run.agents / name).mkdir(parents=True)
            (run.agents / name / "agent.toml").write_text(LOCAL_AGENT.format(name=name))
        run.start()
        try:
            agents = run.wait_running({"alpha", "beta"}, timeout=120)
            host = the_host(run, agents=["alpha", "beta"])
            assert answers(run, "alpha").strip() and answers(run, "beta").strip()

            # One process holds the model; neither the agents nor the deployment server load llama.cpp.
            assert run.proc is not None
            assert mapped(host["pid"], ".gguf") and mapped(host["pid"], "libllama.so")
            for pid in [run.proc.pid, *(a["pid"] for a in agents.values())]:
                assert not mapped(pid, ".gguf") and not mapped(pid, "libllama.so"), pid
            assert psutil.Process(run.proc.pid).memory_info().rss < 120 * 1024 * 1024
            metrics = httpx.get(f"{run.url}/metrics", headers=run.headers(), timeout=10, trust_env=False).text
            assert f'atoll_deploy_model_host_state{{host="{host["name"]}",state="running"}} 1' in metrics
            assert f'atoll_deploy_model_host_agents{{host="{host["name"]}"}} 2' in metrics
            assert f'atoll_deploy_model_host_restarts_total{{host="{host["name"]}"}} 0' in metrics
            logs = httpx.get(f"{run.url}/agents/{host['name']}/logs", headers=run.headers(), timeout=10,
                             trust_env=False)
            assert logs.status_code == 200 and set(logs.json()) >= {"stdout", "stderr"}

            # The dashboard's live stream carries the host, and the page shows it with its agents.
            (shown,) = first_snapshot(run)["model_hosts"]
            assert (shown["name"], shown["status"], shown["pid"], shown["port"], shown["agents"]) == \
                (host["name"], "running", host["pid"], host["port"], ["alpha", "beta"])
            with chromium() as browser:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                signed_in_page(page, run)
                row = page.locator(f'#hosts-body tr[data-host="{shown["name"]}"]')
                expect(row).to_have_attribute("data-pid", str(host["pid"]), timeout=30_000)
                expect(row.locator('[data-label="State"]')).to_contain_text("running")
                expect(row.locator('[data-label="Agents"]')).to_have_text("alpha, beta")
                expect(row.locator('[data-label="URL"]')).to_contain_text(f":{shown['port']}")
                page.screenshot(path=screenshot_path("dashboard-model-host"), full_page=True)

                # A killed host is restarted on the same port; the next request waits for it and
                # answers, and the page shows the new process without a reload.
                os.kill(host["pid"], signal.SIGKILL)
                restarted = the_host(run, restarts=1)
                assert restarted["pid"] != host["pid"] and restarted["port"] == host["port"]
                expect(row).to_have_attribute("data-pid", str(restarted["pid"]), timeout=30_000)
                expect(row.locator('[data-label="Restarts"]')).to_have_text("1")
            assert answers(run, "alpha").strip()
            metrics = httpx.get(f"{run.url}/metrics", headers=run.headers(), timeout=10, trust_env=False).text
            assert f'atoll_deploy_model_host_restarts_total{{host="{host["name"]}"}} 1' in metrics

            # A SIGKILLed deployment server's successor adopts the host with the agents.
            run.kill()
            run.start()
            adopted = the_host(run, adopted=True)
            assert adopted["pid"] == restarted["pid"]
            assert {a["pid"] for a in run.wait_running({"alpha", "beta"}).values()} == \
                {a["pid"] for a in agents.values()}
            assert answers(run, "beta").strip()

            # Its last agent removed, the host stops too (it held the model for them only).
            for name, left in (("alpha", ["beta"]), ("beta", None)):
                deleted = httpx.delete(f"{run.url}/agents/{name}", headers=run.headers(), timeout=60,
                                       trust_env=False)
                assert deleted.status_code in (200, 204), deleted.text
                hosts = listing(run)["model_hosts"]
                assert [h["agents"] for h in hosts] == ([left] if left else []), hosts
            wait_until(lambda: host_processes(run.home) == [], timeout=30, what="the unused model host to stop")

            # Stopped with the fleet: no host outlives the deployment server.
            assert run.proc is not None
            run.proc.send_signal(signal.SIGTERM)
            run.proc.wait(timeout=60)
            assert host_processes(run.home) == []
        finally:
            for proc in host_processes(run.home):  # whatever a failed assertion left behind
                proc.kill()
