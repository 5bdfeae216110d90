"""Health checks on a real agent that stops answering (SIGSTOP): unhealthy, back to running when it
answers again, restarted when it does not; and ``/metrics`` telling the story."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from atoll.deploy.runner import RUNNING, UNHEALTHY
from tests.deploy.conftest import alive, make_config, running_server, write_agent
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_a_frozen_agent_turns_unhealthy_recovers_then_is_restarted(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "frozen")
    write_agent(agents, "steady")
    config = make_config(health_check_interval=0.3, health_failure_threshold=2, stop_timeout=1.0)
    async with running_server(agents, config) as run:
        runner = run.runner("frozen")
        first, port = runner.proc.pid, runner.port  # type: ignore[union-attr]
        frozen = psutil.Process(first)
        os.kill(first, signal.SIGSTOP)
        try:
            await wait_until_async(lambda: runner.state == UNHEALTHY, timeout=15)
        finally:
            os.kill(first, signal.SIGCONT)
        await wait_until_async(lambda: runner.state == RUNNING, timeout=15)
        assert runner.proc.pid == first and runner.restarts == 0  # type: ignore[union-attr]

        os.kill(first, signal.SIGSTOP)
        await wait_until_async(lambda: runner.state == RUNNING and runner.proc is not None and runner.proc.pid != first,
                               timeout=30)
        assert alive([frozen]) == []
        assert runner.restarts == 1 and runner.last_exit_code == -signal.SIGKILL  # SIGTERM waits while stopped
        assert runner.port == port
        assert [s for _, s in runner.history].count(UNHEALTHY) == 2

        scraped = await run.client.get("/metrics")
        assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        values = samples(scraped.text)

    def agent(name: str, metric: str, **labels: str) -> float:
        return values[(metric, tuple(sorted({"agent": name, **labels}.items())))]

    assert agent("frozen", "atoll_deploy_agent_state", state="running") == 1
    assert agent("frozen", "atoll_deploy_agent_state", state="unhealthy") == 0
    assert agent("frozen", "atoll_deploy_agent_restarts_total") == 1
    assert agent("frozen", "atoll_deploy_agent_restart_count") == 1
    assert agent("frozen", "atoll_deploy_agent_health_check_failures_total") >= 3
    assert agent("frozen", "atoll_deploy_agent_last_exit_code") == -signal.SIGKILL
    assert agent("steady", "atoll_deploy_agent_restarts_total") == 0
    assert agent("steady", "atoll_deploy_agent_health_check_failures_total") == 0
    assert agent("steady", "atoll_deploy_agent_uptime_seconds") > agent("frozen", "atoll_deploy_agent_uptime_seconds")
    assert values[("atoll_deploy_uptime_seconds", ())] > 0
    assert values[("atoll_deploy_discovery_problems", ())] == 0
    assert sum(1 for (name, labels) in values if name == "atoll_deploy_agent_state") == 2 * 7


async def test_metrics_count_requests_by_route_and_status(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_agent(agents, "counted")
    async with running_server(agents) as run:
        for _ in range(3):
            await run.client.get("/agents/counted")
        await run.client.get("/agents/nobody")
        await run.client.post("/api/generate", json={"model": "counted", "prompt": "x", "stream": False})
        values = samples((await run.client.get("/metrics")).text)
        again = samples((await run.client.get("/metrics")).text)

    def requests(route: str, status: str, method: str = "GET") -> float:
        labels = (("method", method), ("route", route), ("status", status))
        return values.get(("atoll_deploy_http_requests_total", labels), 0.0)

    assert requests("/agents/{name}", "200") == 3 and requests("/agents/{name}", "404") == 1
    assert requests("/api/generate", "200", "POST") == 1
    assert values[("atoll_deploy_http_request_duration_seconds_count",
                   (("method", "GET"), ("route", "/agents/{name}")))] == 4
    scrape_labels = (("method", "GET"), ("route", "/metrics"), ("status", "200"))
    assert again[("atoll_deploy_http_requests_total", scrape_labels)] == 1
