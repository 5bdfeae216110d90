"""Benchmark: agents on the embedded model with and without the shared model host (issue 14,
"Memory and CPU as the fleet grows"), all in one run, real processes, the real SmolLM2.

1. Memory: a deployment server with N agents on ``provider = "local"`` (N = 1, 2, 10), before
   (``share_local_models = false``: each agent loads its own model) and after (one model host).
   Once every agent has answered one short chat, the USS and PSS (psutil ``memory_full_info``) of
   every process of the fleet (deployment server, agents, host) are summed. Target: N agents cost at
   most one host plus N x 90 MB USS.
2. Tokens/s of a 64-token answer, interleaved rounds, median: llama-cpp-python called directly in
   this process, the host's ``/api/chat`` called directly, and an agent on the host (client -> agent
   -> host); before, an agent with its own model. Target: through the host >= 0.95 of direct.
3. CPU: two agents asked at once (one 64-token answer each): total tokens/s and each answer's wall
   time, before (two llama.cpp instances on the same cores) and after (the host's fair queue: one
   generation at a time, round-robin between agents); and a busy agent asked three times at once
   with a quiet one asked once just after: when the quiet one's answer comes.
4. CPU ms per token of each process on the way (event loops vs llama.cpp's threads).

    python benchmarks/bench_model_host.py [--sizes 1,2,10] [--tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil
from _common import free_port, server_env
from bench_embedded_model import PROMPT, direct

MB = 1024 * 1024
AGENT = """
[agent]
name = "{name}"
[llm]
provider = "local"
[server]
session_store = "memory"
drain_timeout = 1
"""


@dataclass
class Fleet:
    home: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def listing(self) -> dict[str, Any]:
        token = (self.home / "admin_token").read_text().strip()
        response = httpx.get(f"{self.url}/agents", headers={"Authorization": f"Bearer {token}"}, timeout=10,
                             trust_env=False)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def wait_running(self, count: int, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, OSError):
                body = self.listing()
                units = body["agents"] + body.get("model_hosts", [])
                if len(body["agents"]) == count and all(u["status"] == "running" for u in units):
                    return body
            time.sleep(0.5)
        raise TimeoutError(f"{count} agents not running after {timeout:g} s")


@contextlib.contextmanager
def fleet(agents: int, shared: bool) -> Iterator[Fleet]:
    with tempfile.TemporaryDirectory() as tmp:
        home, folder = Path(tmp) / "home", Path(tmp) / "agents"
        home.mkdir()
        (home / "deployment_servers.json").write_text(json.dumps(
            {"share_local_models": shared, "health_check_interval": 5, "startup_timeout": 600}))
        for index in range(agents):
            (folder / f"agent-{index}").mkdir(parents=True)
            (folder / f"agent-{index}" / "agent.toml").write_text(AGENT.format(name=f"agent-{index}"))
        port = free_port()
        log = (Path(tmp) / "server.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "atoll", "--agents-dir", str(folder), "--api-port", str(port),
                                 "--base-port", str(port + 1), "--log-level", "warning"],
                                env={**server_env(), "ATOLL_HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        try:
            yield Fleet(home, port, proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)


#: (time to first token, tokens/s after the first, tokens)
Answer = tuple[float, float, int]


def chat(url: str, model: str, tokens: int, headers: dict[str, str] | None = None) -> Answer:
    """(time to first token, tokens/s after the first, tokens) of one streamed answer."""
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}],
            "options": {"num_predict": tokens, "temperature": 0.0, "seed": 0}}
    started = time.perf_counter()
    stamps = []
    with httpx.stream("POST", url + "/api/chat", json=body, headers=headers, timeout=600, trust_env=False) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if json.loads(line)["message"]["content"]:
                stamps.append(time.perf_counter())
    return stamps[0] - started, (len(stamps) - 1) / (stamps[-1] - stamps[0]), len(stamps)


def memory(fleet: Fleet) -> dict[str, tuple[float, float, int]]:
    """(USS MB, PSS MB, processes) of the deployment server, the agents, the hosts, and all."""
    root = psutil.Process(fleet.proc.pid)
    kinds: dict[str, list[float]] = {"deployment server": [], "agents": [], "model host": [], "other": []}
    out: dict[str, tuple[float, float, int]] = {}
    totals = [0.0, 0.0, 0]
    for proc in [root, *root.children(recursive=True)]:
        info = proc.memory_full_info()
        cmdline = proc.cmdline()
        kind = ("deployment server" if proc.pid == root.pid else "model host" if "model-host" in cmdline
                else "agents" if "--server" in cmdline else "other")
        kinds[kind] += [info.uss, info.pss]
        totals[0] += info.uss
        totals[1] += info.pss
        totals[2] += 1
    for kind, values in kinds.items():
        if values:
            out[kind] = (sum(values[0::2]) / MB, sum(values[1::2]) / MB, len(values) // 2)
    out["fleet"] = (totals[0] / MB, totals[1] / MB, int(totals[2]))
    return out


def warm(fleet: Fleet, listing: dict[str, Any]) -> None:
    """One short answer from every agent, so each model in use is loaded and has worked."""
    for agent in listing["agents"]:
        chat(agent["url"], agent["name"], 4)


def both_at_once(listing: dict[str, Any], tokens: int) -> tuple[float, list[float]]:
    """Two agents asked at once: (total tokens/s, each answer's wall time)."""
    agents = listing["agents"][:2]

    def one(agent: dict[str, Any]) -> tuple[int, float]:
        started = time.perf_counter()
        _, _, count = chat(agent["url"], agent["name"], tokens)
        return count, time.perf_counter() - started

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, agents))
    wall = time.perf_counter() - started
    return sum(count for count, _ in results) / wall, [seconds for _, seconds in results]


def busy_and_quiet(listing: dict[str, Any], tokens: int) -> tuple[float, int]:
    """A busy agent asked three times at once, then a quiet one once: (the quiet agent's wait in
    seconds, its place among the four answers). Round-robin serves it second, FIFO would serve it last."""
    busy, quiet = listing["agents"][:2]
    done: list[str] = []

    def one(agent: dict[str, Any], delay: float) -> float:
        time.sleep(delay)
        started = time.perf_counter()
        chat(agent["url"], agent["name"], tokens)
        done.append(agent["name"])
        return time.perf_counter() - started

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(one, busy, 0.0) for _ in range(3)] + [pool.submit(one, quiet, 0.3)]
        waits = [f.result() for f in futures]
    return waits[-1], done.index(quiet["name"]) + 1


def rates(paths: dict[str, Callable[[int], Answer]], tokens: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Median (TTFT s, tokens/s) of each path, rounds interleaved."""
    runs: dict[str, list[tuple[float, float, int]]] = {name: [] for name in paths}
    for run in paths.values():
        run(8)  # warm-up
    for _ in range(rounds):
        for name, run in paths.items():
            runs[name].append(run(tokens))
    return {name: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for name, v in runs.items()}


def speed_paths(run: Fleet, listing: dict[str, Any], shared: bool) -> dict[str, Callable[[int], Answer]]:
    """The ways to the model of a one-agent fleet, and llama-cpp-python direct."""
    agent = listing["agents"][0]
    paths: dict[str, Callable[[int], Answer]] = {"direct": direct}
    if shared:
        host = listing["model_hosts"][0]
        token = (run.home / "run" / "model-hosts" / "agent-0.token").read_text().strip()
        paths["host"] = partial(chat, host["url"], "smol", headers={"Authorization": f"Bearer {token}"})
        paths["agent -> host"] = partial(chat, agent["url"], agent["name"])
    else:
        paths["agent, own model"] = partial(chat, agent["url"], agent["name"])
    return paths


def cpu_per_token(run: Callable[[int], Answer], procs: dict[str, psutil.Process], tokens: int, rounds: int
                  ) -> dict[str, float]:
    """CPU ms per generated token of each process part over ``rounds`` answers through ``run``. A
    part is a whole process, or ``<name> loop`` (its main thread: the event loop) and ``<name>
    model`` (its other threads: llama.cpp's) for a process that runs the model. Unlike tokens/s,
    this does not depend on what else the machine is doing."""
    def times() -> dict[str, float]:
        out: dict[str, float] = {}
        for name, proc in procs.items():
            threads = proc.threads()
            main_thread = sum(t.user_time + t.system_time for t in threads if t.id == proc.pid)
            others = sum(t.user_time + t.system_time for t in threads if t.id != proc.pid)
            out.update({f"{name} loop": main_thread, f"{name} model": others} if others > 0.05 else
                       {name: main_thread + others})
        return out

    before = times()
    count = sum(run(tokens)[2] for _ in range(rounds))
    after = times()
    return {part: (after[part] - before.get(part, 0.0)) * 1000 / count for part in after}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,2,10")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    print(f"Agents on the embedded model (SmolLM2-135M Q4_1), {os.cpu_count()} CPUs, one run")
    mem: dict[tuple[int, bool], dict[str, tuple[float, float, int]]] = {}
    speed: dict[str, tuple[float, float]] = {}
    together: dict[bool, tuple[float, list[float]]] = {}
    cpu: dict[str, dict[str, float]] = {}
    fairness: dict[bool, tuple[float, int]] = {}
    for shared in (False, True):
        for size in sizes:
            with fleet(size, shared) as run:
                listing = run.wait_running(size)
                warm(run, listing)
                mem[(size, shared)] = memory(run)
                if size == 1:
                    paths = speed_paths(run, listing, shared)
                    phase = rates(paths, args.tokens, args.rounds)
                    when = "after" if shared else "before"
                    speed.update({f"{k} ({when})": v for k, v in phase.items()})
                    procs = {"agent": psutil.Process(listing["agents"][0]["pid"])}
                    if shared:
                        procs["host"] = psutil.Process(listing["model_hosts"][0]["pid"])
                    through_agent = paths["agent -> host" if shared else "agent, own model"]
                    cpu[when] = cpu_per_token(through_agent, procs, args.tokens, args.rounds)
                if size == 2:
                    together[shared] = both_at_once(listing, args.tokens)
                    fairness[shared] = busy_and_quiet(listing, args.tokens // 2)
    report(mem, speed, together, sizes, args)
    for shared, (wait, place) in fairness.items():
        label = "after (host, fair queue)" if shared else "before (two models)"
        print(f"  busy agent x3 then a quiet agent, {label}: the quiet one answered in {wait:.2f} s, "
              f"{place}{'st' if place == 1 else 'nd' if place == 2 else 'rd' if place == 3 else 'th'} of 4")
    report_cpu(cpu)


def report(mem: dict[tuple[int, bool], dict[str, tuple[float, float, int]]], speed: dict[str, tuple[float, float]],
           together: dict[bool, tuple[float, list[float]]], sizes: list[int], args: argparse.Namespace) -> None:
    print("\n1. Memory of the whole fleet (MB; USS / PSS; processes)")
    print(f"  {'agents':>6}  {'before: each loads its own':>34}  {'after: one model host':>34}  {'USS saved':>9}")
    for size in sizes:
        before, after = mem[(size, False)]["fleet"], mem[(size, True)]["fleet"]
        print(f"  {size:>6}  {before[0]:>10.0f} / {before[1]:>6.0f}  ({before[2]:>2} procs)      "
              f"{after[0]:>10.0f} / {after[1]:>6.0f}  ({after[2]:>2} procs)      {before[0] - after[0]:>7.0f}")
    for size in sizes:
        for shared in (False, True):
            parts = ", ".join(f"{kind} {uss:.0f}/{pss:.0f} ({n})" for kind, (uss, pss, n) in mem[(size, shared)].items()
                              if kind != "fleet")
            print(f"    N={size:<2} {'after ' if shared else 'before'}: {parts}")
    largest = max(sizes)
    after = mem[(largest, True)]
    host_uss = after.get("model host", (0.0, 0.0, 0))[0]
    per_agent = after.get("agents", (0.0, 0.0, 1))
    print(f"  after, N={largest}: host {host_uss:.0f} MB USS + {per_agent[0] / per_agent[2]:.0f} MB USS per agent "
          f"(target <= 90): {'OK' if per_agent[0] / per_agent[2] <= 90 else 'ABOVE TARGET'}")
    print(f"\n2. Tokens/s, {args.tokens}-token answers, {args.rounds} interleaved rounds (median)")
    for name, (ttft, rate) in speed.items():
        direct_rate = speed["direct (after)" if "after" in name else "direct (before)"][1]
        print(f"  {name:28s} TTFT {ttft * 1000:7.1f} ms   {rate:6.1f} tokens/s   "
              f"ratio to direct {rate / direct_rate:.3f}")
    if together:
        print(f"\n3. Two agents asked at once ({args.tokens} tokens each)")
        for shared, (rate, walls) in together.items():
            label = "after (host, fair queue)" if shared else "before (two models)"
            print(f"  {label:26s} total {rate:6.1f} tokens/s   answers took {', '.join(f'{w:.2f} s' for w in walls)}")


def report_cpu(cpu: dict[str, dict[str, float]]) -> None:
    """What the way through the host costs, in CPU: the parts that are not the model, per token,
    against the model's own CPU per token; on a CPU-bound machine the ratio of tokens/s is at best
    model / (model + overhead)."""
    if not cpu:
        return
    print("\n4. CPU ms per token of a client -> agent answer (process main thread = event loop)")
    for when, parts in cpu.items():
        print(f"  {when:6s} " + "   ".join(f"{part} {ms:.2f}" for part, ms in parts.items()))
        model = sum(ms for part, ms in parts.items() if part.endswith("model"))
        overhead = sum(ms for part, ms in parts.items() if not part.endswith("model"))
        if model:
            print(f"         model {model:.2f} ms/token, the rest {overhead:.2f} ms/token: CPU-bound tokens/s "
                  f"at best {model / (model + overhead):.3f} of the model alone")


if __name__ == "__main__":
    main()
