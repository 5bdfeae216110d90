"""Benchmark: atoll in front of a real upstream, the front door, and the LiteLLM proxy, side by side.

Every process is real and on 127.0.0.1: the scripted Ollama-compatible upstream
(``fixture_upstream.py``, a benchmark fixture), the bare Starlette app (``bare_app.py``), an atoll
agent server on the ``ollama`` provider pointed at the upstream, a deployment server whose front door
routes to a second such agent, and the LiteLLM proxy (``litellm[proxy]`` pinned in its own venv,
``.bench-venv/litellm``, by ``scripts/install-bench-tools.sh``) on the same upstream. ``wrk -t1``
drives each path in turn; rounds interleave the paths so machine noise hits all alike, and every
ratio is computed within a round (median and range over rounds printed).

Then, the same rows with each process pinned (``taskset``: the process under test on CPU 1, wrk
and the upstream on CPU 0) and the CPU time per request of every process; then a 500-chunk
streamed answer, through atoll against the upstream alone (wall time per answer).

    python benchmarks/bench_gateway.py [--seconds 8] [--connections 16] [--rounds 3] [--no-litellm]

Targets (issue #14): atoll >= 40 % of the upstream alone and >= 15x LiteLLM at 16 connections;
front door >= 30 % of the upstream alone; 500-chunk stream <= 10 % wall-time overhead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from _common import REPO, free_port, server_env, wait_healthy
from _wrk import WrkResult, cpu_count, pin, wrk

LITELLM = REPO / ".bench-venv" / "litellm" / "bin" / "litellm"
MODEL = "bench-model"

AGENT = """
[agent]
name = "{name}"
[llm]
provider = "ollama"
base_url = "{upstream}"
model = "{model}"
[server]
session_store = "memory"
"""

LITELLM_CONFIG = """
model_list:
  - model_name: bench
    litellm_params:
      model: ollama_chat/{model}
      api_base: {upstream}
"""


def ollama_body(model: str, text: str = "hello benchmark", stream: bool = False) -> dict[str, object]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}


def openai_body(model: str, text: str = "hello benchmark", stream: bool = False) -> dict[str, object]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid


@contextmanager
def service(name: str, command: list[str], folder: Path, health: str, *, port: int,
            env: dict[str, str] | None = None, timeout: float = 120) -> Iterator[Service]:
    log = folder / f"{name}.log"
    with open(log, "w") as sink:
        process = subprocess.Popen(command, cwd=folder, env=env or server_env(HOME=str(folder)), stdout=sink,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log, timeout=timeout, path=health)
        yield Service(name, process, url)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def agent_server(folder: Path, upstream: str) -> list[str]:
    (folder / "agent").mkdir(parents=True, exist_ok=True)
    toml = folder / "agent" / "agent.toml"
    toml.write_text(AGENT.format(name="bench", upstream=upstream, model=MODEL))
    return ["--server", "--host", "127.0.0.1", "--agent", str(toml), "--log-level", "warning"]


@dataclass
class Row:
    name: str
    url: str
    body: dict[str, object]
    #: The process under test and every process the request passes through, for the CPU figures.
    processes: dict[str, int]
    pinned_to_1: tuple[str, ...]


def run_row(row: Row, args: argparse.Namespace, folder: Path, *, pinned: bool, connections: int) -> WrkResult:
    if pinned:
        for name, pid in row.processes.items():
            pin(pid, "1" if name in row.pinned_to_1 else "0")
    result = wrk(row.url, row.body, connections=connections, seconds=args.seconds, folder=folder,
                 watch=row.processes, cpus="0" if pinned else None)
    return result


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.2f} (range {min(values):.2f}-{max(values):.2f})"


def report_rounds(rounds: list[dict[str, WrkResult]], ratios: dict[str, tuple[str, str, float, str]]) -> None:
    names = list(rounds[0])
    print(f"\n{'path':42s} {'req/s median (range)':>32s} {'p50 ms':>8s} {'errors':>7s}")
    for name in names:
        rps = [r[name].rps for r in rounds]
        p50 = statistics.median(r[name].p50_ms for r in rounds)
        errors = sum(r[name].errors for r in rounds)
        print(f"{name:42s} {spread(rps):>32s} {p50:8.2f} {errors:7d}")
    print("\nratios (within each round; median and range over rounds)")
    for label, (top, bottom, target, kind) in ratios.items():
        if top not in names or bottom not in names:
            continue
        values = [r[top].rps / r[bottom].rps for r in rounds]
        met = statistics.median(values) >= target
        shown = f">= {target:g}x" if kind == "x" else f">= {target:.0%}"
        print(f"  {label:40s} {spread(values):>32s}   target {shown}: {'met' if met else 'MISSED'}")


def report_cpu(results: dict[str, WrkResult]) -> None:
    print("\npinned (process under test on CPU 1, wrk and the rest on CPU 0): CPU-µs per request")
    for name, result in results.items():
        cpu = "  ".join(f"{proc} {us:7.0f}" for proc, us in result.cpu_us.items())
        print(f"  {name:42s} {result.rps:8.0f} req/s   {cpu}")


def stream_wall(client: httpx.Client, url: str, body: dict[str, object]) -> float:
    started = time.perf_counter()
    with client.stream("POST", url, json=body) as response:
        response.raise_for_status()
        for _ in response.iter_raw():
            pass
    return time.perf_counter() - started


def stream_overhead(paths: dict[str, tuple[str, dict[str, object]]], repeats: int) -> None:
    """Wall time of one long streamed answer per path, one client, paths interleaved."""
    times: dict[str, list[float]] = {name: [] for name in paths}
    with httpx.Client(timeout=60) as client:
        for url, body in paths.values():  # warm-up
            stream_wall(client, url, body)
        for _ in range(repeats):
            for name, (url, body) in paths.items():
                times[name].append(stream_wall(client, url, body))
    base = statistics.median(times["upstream alone"])
    print(f"\n500-chunk streamed answer, wall time per answer ({repeats} answers each, median)")
    for name, values in times.items():
        median = statistics.median(values)
        overhead = median / base - 1
        verdict = "" if name == "upstream alone" else \
            f"   overhead {overhead:+.1%}  target <= 10%: {'met' if overhead <= 0.10 else 'MISSED'}"
        print(f"  {name:42s} {median * 1000:8.1f} ms (range {min(values) * 1000:.1f}-{max(values) * 1000:.1f})"
              f"{verdict}")


def ensure_tools(want_litellm: bool) -> None:
    if shutil.which("wrk") is None or (want_litellm and not LITELLM.exists()):
        subprocess.run(["bash", str(REPO / "scripts" / "install-bench-tools.sh")], check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stream-repeats", type=int, default=20)
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM proxy baseline")
    parser.add_argument("--no-pinned", action="store_true", help="skip the pinned run")
    args = parser.parse_args()
    ensure_tools(not args.no_litellm)
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        port = free_port()
        upstream = stack.enter_context(service(
            "upstream", [py, str(REPO / "benchmarks" / "fixture_upstream.py"), str(port)], folder,
            "/api/version", port=port))
        port = free_port()
        bare = stack.enter_context(service(
            "bare", [py, str(REPO / "benchmarks" / "bare_app.py"), str(port)], folder, "/health", port=port))
        port = free_port()
        agent = stack.enter_context(service(
            "atoll", [py, "-m", "atoll", *agent_server(folder / "solo", upstream.url), "--port", str(port)],
            folder, "/health", port=port))
        front, behind = stack.enter_context(front_door(folder, upstream.url))
        litellm = None
        if not args.no_litellm:
            port = free_port()
            (folder / "litellm.yaml").write_text(LITELLM_CONFIG.format(model=MODEL, upstream=upstream.url))
            env = server_env(HOME=str(folder), LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False")
            litellm = stack.enter_context(service(
                "litellm", [str(LITELLM), "--config", str(folder / "litellm.yaml"), "--host", "127.0.0.1",
                            "--port", str(port), "--num_workers", "1"], folder, "/health/liveliness",
                port=port, env=env, timeout=180))
        up = {"upstream": upstream.pid}
        rows = [
            Row("bare Starlette app (same JSON round trip)", bare.url + "/api/chat", ollama_body(MODEL),
                {"bare": bare.pid}, ("bare",)),
            Row("upstream alone", upstream.url + "/api/chat", ollama_body(MODEL, stream=True), up, ("upstream",)),
            Row("atoll /api/chat -> upstream", agent.url + "/api/chat", ollama_body("bench"),
                {"atoll": agent.pid, **up}, ("atoll",)),
            Row("atoll /v1/chat/completions -> upstream", agent.url + "/v1/chat/completions", openai_body("bench"),
                {"atoll": agent.pid, **up}, ("atoll",)),
            Row("front door -> atoll /api/chat -> upstream", front.url + "/api/chat", ollama_body("bench"),
                {"front door": front.pid, "atoll": behind, **up}, ("front door", "atoll")),
        ]
        if litellm is not None:
            rows.append(Row("LiteLLM proxy /v1 -> upstream", litellm.url + "/v1/chat/completions",
                            openai_body("bench"), {"litellm": litellm.pid, **up}, ("litellm",)))
        for row in rows:  # warm-up: connections, caches, lazy imports
            wrk(row.url, row.body, connections=args.connections, seconds=1, folder=folder)
        print(f"wrk -t1 -c{args.connections} -d{args.seconds:g}s, {args.rounds} rounds, paths interleaved; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        rounds = [{row.name: run_row(row, args, folder, pinned=False, connections=args.connections)
                   for row in rows} for _ in range(args.rounds)]
        report_rounds(rounds, {
            "atoll /api/chat / upstream alone": ("atoll /api/chat -> upstream", "upstream alone", 0.40, "%"),
            "atoll /v1 / upstream alone": ("atoll /v1/chat/completions -> upstream", "upstream alone", 0.40, "%"),
            "front door / upstream alone": ("front door -> atoll /api/chat -> upstream", "upstream alone", 0.30,
                                            "%"),
            "atoll /api/chat / LiteLLM": ("atoll /api/chat -> upstream", "LiteLLM proxy /v1 -> upstream", 15, "x"),
            "atoll /v1 / LiteLLM": ("atoll /v1/chat/completions -> upstream", "LiteLLM proxy /v1 -> upstream", 15,
                                    "x"),
        })
        single = {row.name: run_row(row, args, folder, pinned=False, connections=1) for row in rows[1:3]}
        print("\none connection (-c1): mean latency per request")
        for name, result in single.items():
            print(f"  {name:42s} {result.avg_ms:8.2f} ms  (p50 {result.p50_ms:.2f} ms)")
        if not args.no_pinned and cpu_count() >= 2:
            pinned = {row.name: run_row(row, args, folder, pinned=True, connections=args.connections)
                      for row in rows}
            for pid in {pid for row in rows for pid in row.processes.values()}:
                pin(pid, f"0-{(os.cpu_count() or 1) - 1}")
            report_cpu(pinned)
        stream_overhead({
            "upstream alone": (upstream.url + "/api/chat", ollama_body(MODEL, "/count 500", stream=True)),
            "atoll /api/chat -> upstream": (agent.url + "/api/chat", ollama_body("bench", "/count 500", stream=True)),
            "atoll /v1/chat/completions -> upstream": (agent.url + "/v1/chat/completions",
                                                       openai_body("bench", "/count 500", stream=True)),
        }, args.stream_repeats)


@contextmanager
def front_door(folder: Path, upstream: str) -> Iterator[tuple[Service, int]]:
    """A deployment server with one agent on the upstream; yields it and the agent's pid."""
    agents = folder / "agents"
    (agents / "bench").mkdir(parents=True)
    (agents / "bench" / "agent.toml").write_text(AGENT.format(name="bench", upstream=upstream, model=MODEL))
    api_port, base_port = free_port(), free_port()
    env = server_env(HOME=str(folder), ATOLL_HOME=str(folder / "atoll-home"))
    command = [sys.executable, "-m", "atoll", "--agents-dir", str(agents), "--api-port", str(api_port),
               "--base-port", str(base_port), "--log-level", "warning"]
    with service("front-door", command, folder, "/health", port=api_port, env=env) as front:
        wait_for(lambda: httpx.post(front.url + "/api/chat", json=ollama_body("bench"), timeout=5).status_code
                 == 200)
        children = psutil.Process(front.pid).children(recursive=True)
        agent = next(c for c in children if "--server" in c.cmdline())
        yield front, agent.pid


def wait_for(check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the front door never routed to its agent")


if __name__ == "__main__":
    main()
