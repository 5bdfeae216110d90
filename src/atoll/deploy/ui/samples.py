"""The metrics ring: every ``interval`` seconds the deployment server reads each running agent's
``/metrics`` and keeps, per agent, a bounded ring of samples (requests/s, p50/p95 latency, tokens/s)
covering the last hour, plus what the agents table shows (model, provider, MCP servers connected).

Rings are ``array('d')`` columns of fixed capacity (~17 KB per agent at the default 10 s interval),
allocated only for agents that have run, and dropped with the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from atoll.deploy.runner import RUNNING, UNHEALTHY

if TYPE_CHECKING:
    from atoll.deploy.agent_keys import AgentKeys
    from atoll.deploy.supervisor import Supervisor

logger = logging.getLogger(__name__)

HOUR = 3600.0
#: Requests that are not traffic: the supervisor's own probes and this sampler.
NOT_TRAFFIC = frozenset({"/health", "/metrics", "/atoll/status"})
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
WANTED = ("atoll_http_requests_total", "atoll_http_request_duration_seconds_bucket", "atoll_tokens_total",
          "atoll_mcp_server_state", "atoll_agent_info")
COLUMNS = ("t", "dt", "requests", "tokens", "p50", "p95")


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """The samples of the few families the dashboard reads, from Prometheus text format."""
    out = []
    for line in text.splitlines():
        if not line.startswith(WANTED):
            continue
        match = _LINE.match(line)
        if match is None:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(match.group(2) or "")}
        out.append((match.group(1), labels, value))
    return out


@dataclass
class Counters:
    """Cumulative figures read from one scrape."""

    requests: float = 0.0
    tokens: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)


@dataclass
class Live:
    """What the agents table shows from the last scrape."""

    provider: str | None = None
    model: str | None = None
    mcp_connected: int = 0
    mcp_total: int = 0
    sampled_at: float | None = None


def read_scrape(samples: Iterable[tuple[str, dict[str, str], float]]) -> tuple[Counters, Live]:
    counters, live = Counters(), Live()
    mcp: dict[str, str] = {}
    for name, labels, value in samples:
        if name == "atoll_http_requests_total" and labels.get("route") not in NOT_TRAFFIC:
            counters.requests += value
        elif name == "atoll_http_request_duration_seconds_bucket" and labels.get("route") not in NOT_TRAFFIC:
            bound = math.inf if labels.get("le") == "+Inf" else float(labels.get("le", "inf"))
            counters.buckets[bound] = counters.buckets.get(bound, 0.0) + value
        elif name == "atoll_tokens_total":
            counters.tokens += value
        elif name == "atoll_mcp_server_state" and value == 1:
            mcp[labels.get("server", "")] = labels.get("state", "")
        elif name == "atoll_agent_info":
            live.provider, live.model = labels.get("provider"), labels.get("model")
    live.mcp_total = len(mcp)
    live.mcp_connected = sum(1 for state in mcp.values() if state == "connected")
    return counters, live


def quantile(buckets: dict[float, float], q: float) -> float:
    """The ``q`` quantile of a cumulative histogram (linear within a bucket), NaN when it is empty."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return math.nan
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


def _delta(now: float, before: float) -> float:
    return now - before if now >= before else now  # a restarted agent starts its counters again


class Ring:
    """Fixed-capacity columns of samples, oldest overwritten first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.columns = {name: array("d") for name in COLUMNS}
        self.next = 0

    def __len__(self) -> int:
        return len(self.columns["t"])

    def append(self, **values: float) -> None:
        for name, column in self.columns.items():
            if len(column) < self.capacity:
                column.append(values[name])
            else:
                column[self.next] = values[name]
        self.next = (self.next + 1) % self.capacity

    def rows(self) -> list[dict[str, float]]:
        order = list(range(len(self)))
        if len(self) == self.capacity:
            order = order[self.next:] + order[:self.next]
        return [{name: self.columns[name][i] for name in COLUMNS} for i in order]


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


class Sampler:
    def __init__(self, supervisor: Supervisor, client: httpx.AsyncClient, keys: AgentKeys, *,
                 interval: float = 10.0, wall: Callable[[], float] = time.time) -> None:
        self.supervisor = supervisor
        self.client = client
        self.keys = keys
        self.interval = interval
        self.wall = wall
        self.capacity = max(2, math.ceil(HOUR / interval))
        self.rings: dict[str, Ring] = {}
        self.live: dict[str, Live] = {}
        self._last: dict[str, tuple[float, Counters]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def sample_all(self) -> None:
        names = set(self.supervisor.runners)
        for gone in [n for n in self.rings if n not in names]:
            self.forget(gone)
        running = [(n, r.port) for n, r in self.supervisor.runners.items() if r.state in (RUNNING, UNHEALTHY)]
        limit = asyncio.Semaphore(8)

        async def one(name: str, port: int) -> None:
            async with limit:
                await self.sample(name, port)

        await asyncio.gather(*(one(n, p) for n, p in running))

    async def sample(self, name: str, port: int) -> None:
        try:
            response = await self.client.get(f"http://127.0.0.1:{port}/metrics", headers=self.keys.headers(name),
                                             timeout=2.0)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            logger.debug("metrics of agent %s not read: %s", name, exc)
            return
        now = self.wall()
        counters, live = read_scrape(parse_metrics(response.text))
        live.sampled_at = now
        self.live[name] = live
        before = self._last.get(name)
        self._last[name] = (now, counters)
        if before is None:
            return
        then, old = before
        buckets = {b: _delta(v, old.buckets.get(b, 0.0)) for b, v in counters.buckets.items()}
        ring = self.rings.get(name)
        if ring is None:
            ring = self.rings[name] = Ring(self.capacity)
        ring.append(t=now, dt=max(now - then, 1e-6), requests=_delta(counters.requests, old.requests),
                    tokens=_delta(counters.tokens, old.tokens), p50=quantile(buckets, 0.5),
                    p95=quantile(buckets, 0.95))

    def forget(self, name: str) -> None:
        self.rings.pop(name, None)
        self.live.pop(name, None)
        self._last.pop(name, None)

    def series(self, name: str) -> dict[str, Any]:
        """The ring as the charts draw it: times, requests/s, tokens/s, p50 and p95 (ms)."""
        rows = self.rings[name].rows() if name in self.rings else []
        return {
            "interval_s": self.interval,
            "t": [r["t"] for r in rows],
            "requests_per_s": [round(r["requests"] / r["dt"], 4) for r in rows],
            "tokens_per_s": [round(r["tokens"] / r["dt"], 4) for r in rows],
            "p50_ms": [_json_number(r["p50"] * 1000) for r in rows],
            "p95_ms": [_json_number(r["p95"] * 1000) for r in rows],
        }

    def summary(self, name: str) -> dict[str, Any]:
        """The agents table's live columns: model, provider, MCP servers, requests and tokens per minute."""
        live = self.live.get(name)
        if live is None:
            return {}
        rows = self.rings[name].rows() if name in self.rings else []
        recent = [r for r in rows if r["t"] >= self.wall() - 60.0]
        seconds = sum(r["dt"] for r in recent)
        per_minute = (lambda key: round(sum(r[key] for r in recent) * 60.0 / seconds, 1)) if seconds else None
        return {"provider": live.provider, "model": live.model, "mcp_connected": live.mcp_connected,
                "mcp_total": live.mcp_total,
                "requests_per_min": per_minute("requests") if per_minute else None,
                "tokens_per_min": per_minute("tokens") if per_minute else None}
