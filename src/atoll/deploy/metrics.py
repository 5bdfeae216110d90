"""``GET /metrics``: the deployment server's Prometheus metrics, read from the supervisor at scrape time.

Agent state (one gauge per agent and state, 1 for the current one), restarts, uptime, health-check
failures and last exit code per agent, the same per model host (and the agents on each); the
server's own uptime, discovery problems and requests by route and status.

The text exposition format (0.0.4) is written here instead of through ``prometheus-client``: the
library costs the supervisor about 1.4 MB of its 50 MB budget, and nothing here needs more than a
few lines of text built from values the supervisor already keeps.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from atoll.deploy.runner import FAILED, RESTARTING, RUNNING, STARTING, STOPPED, STOPPING, UNHEALTHY

if TYPE_CHECKING:
    from atoll.deploy.middleware import RequestStats
    from atoll.deploy.model_hosts import ModelHosts
    from atoll.deploy.runner import AgentRunner
    from atoll.deploy.supervisor import Supervisor

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = (STARTING, RUNNING, UNHEALTHY, RESTARTING, FAILED, STOPPING, STOPPED)


@dataclass
class Family:
    name: str
    kind: str
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, suffix: str = "", **labels: str) -> None:
        self.samples.append((suffix, labels, value))

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        out += [f"{self.name}{suffix}{_labels(labels)} {_number(value)}" for suffix, labels, value in self.samples]
        return out


def render(families: list[Family]) -> str:
    return "".join(line + "\n" for family in families for line in family.lines())


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    escaped = (v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') for v in labels.values())
    return "{" + ",".join(f'{k}="{v}"' for k, v in zip(labels, escaped, strict=True)) + "}"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def agent_families(supervisor: Supervisor, hosts: ModelHosts | None = None) -> list[Family]:
    """The agents' families; with ``hosts``, the same for each model host (``atoll_deploy_model_host_*``,
    label ``host``) and how many agents use it."""
    families = _runner_families("atoll_deploy_agent", "agent", "agent", supervisor.runners)
    if hosts is not None:
        families += _runner_families("atoll_deploy_model_host", "model host", "host", hosts.runners)
        using = Family("atoll_deploy_model_host_agents", "gauge", "Agents that run on the model host.")
        for host in hosts.statuses([runner.spec for runner in supervisor.runners.values()]):
            using.add(len(host["agents"]), host=host["name"])
        families.append(using)
    return families


def _runner_families(prefix: str, what: str, label: str, runners: dict[str, AgentRunner]) -> list[Family]:
    """State, restarts, uptime, failed health checks and last exit code of each supervised process
    (``what`` in the help texts), its name under ``label``."""
    state = Family(f"{prefix}_state", "gauge", f"1 for the state each {what} is in, 0 for the others.")
    restarts = Family(f"{prefix}_restart_count", "gauge",
                      f"Restarts since the {what} was last started by hand (as atoll status shows).")
    restarts_total = Family(f"{prefix}_restarts_total", "counter",
                            "Automatic restarts since the deployment server started.")
    uptime = Family(f"{prefix}_uptime_seconds", "gauge", f"Seconds the {what} has been up (0 when down).")
    health = Family(f"{prefix}_health_check_failures_total", "counter",
                    f"Failed health checks of a running {what}.")
    exit_code = Family(f"{prefix}_last_exit_code", "gauge",
                       f"Exit code of the {what}'s last process (negative: killed by that signal).")
    for name, runner in sorted(runners.items()):
        named = {label: name}
        for candidate in STATES:
            state.add(1.0 if runner.state == candidate else 0.0, **named, state=candidate)
        restarts.add(runner.restarts, **named)
        restarts_total.add(runner.restarts_total, **named)
        uptime.add(runner.uptime() or 0.0, **named)
        health.add(runner.health_failures, **named)
        if runner.last_exit_code is not None:
            exit_code.add(runner.last_exit_code, **named)
    return [state, restarts, restarts_total, uptime, health, exit_code]


def server_families(problem_count: int, stats: RequestStats, started: float) -> list[Family]:
    uptime = Family("atoll_deploy_uptime_seconds", "gauge", "Seconds since the deployment server started.")
    uptime.add(time.monotonic() - started)
    problems = Family("atoll_deploy_discovery_problems", "gauge", "Agent folders that could not be started.")
    problems.add(problem_count)
    requests = Family("atoll_deploy_http_requests_total", "counter",
                      "HTTP requests answered (management API and front door), by route template and status.")
    seconds = Family("atoll_deploy_http_request_duration_seconds", "summary", "Time to answer a request.")
    by_route: dict[tuple[str, str], list[float]] = {}
    for (method, route, status), (count, total) in sorted(stats.counts.items()):
        requests.add(count, method=method, route=route, status=status)
        entry = by_route.setdefault((method, route), [0.0, 0.0])
        entry[0] += count
        entry[1] += total
    for (method, route), (count, total) in by_route.items():
        seconds.add(count, "_count", method=method, route=route)
        seconds.add(total, "_sum", method=method, route=route)
    return [uptime, problems, requests, seconds]


def scrape(problem_count: int, stats: RequestStats, started: float, agents: list[Family]) -> str:
    return render([*server_families(problem_count, stats, started), *agents])
