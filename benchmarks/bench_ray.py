"""Benchmark: ``atoll --backend ray`` on a local single-node Ray cluster, with the scripted LLM.

1. Cluster start to first 200: from launching ``atoll --backend ray`` (which starts the Ray head,
   Serve, the ingress and the agents) to the first chat answered through the ingress.
2. Request overhead: ``wrk -t1`` on the same chat through the Serve ingress (Serve proxy -> ingress
   replica -> Serve proxy -> agent replica) and to a direct agent process (``atoll --server``), in
   the same run; first unpinned, then pinned with ``taskset`` (the processes under test on CPU 1,
   wrk on CPU 0), with the CPU microseconds per request each process spent.
3. Load start to the second replica serving: concurrent slow chats to an agent that autoscales from
   1 to 2 replicas at 1 request in progress per replica; until an answer comes from a second replica.
4. Replica kill to replacement serving: SIGKILL to the only replica of an agent; until a chat is
   answered by a new replica.

    python benchmarks/bench_ray.py [--seconds 8] [--connections 8]

Needs ``ray[serve]`` (the ``ray`` extra), ``wrk`` and ``redis-server`` (the autoscaling agent keeps
its sessions in Redis). Targets (issue #11): ingress throughput >= 50 % of a direct agent;
scale-up <= 5 s; replacement <= 5 s.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
from _common import free_port, run_agent_server, server_env, write_agent
from _wrk import WrkResult, pin, wrk

from tests.support.redis_server import run_redis
from tests.support.servers import scripted_agent_toml

REPLICA_HEADER = "X-Atoll-Replica"
ONE_CPU_TENTH = 'ray_actor_options = { num_cpus = 0.1 }\n'
AGENTS = {
    "bench": scripted_agent_toml("bench", extra=f"[server]\nsession_store = \"memory\"\n[deployment]\n{ONE_CPU_TENTH}"),
    "scale": scripted_agent_toml("scale", extra="[deployment]\nmin_replicas = 1\nmax_replicas = 2\n"
                                                f"target_ongoing_requests = 1\n{ONE_CPU_TENTH}"),
}
CHAT = {"model": "bench", "stream": False, "messages": [{"role": "user", "content": "hi"}]}


def chat(url: str, model: str, content: str = "hi", timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{url}/api/chat", timeout=timeout, json={
        "model": model, "stream": False, "messages": [{"role": "user", "content": content}]})


def first_200(ingress: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"atoll --backend ray exited:\n{log.read_text()[-3000:]}")
        try:
            if chat(ingress, "bench", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"no 200 through the ingress after {timeout} s:\n{log.read_text()[-3000:]}")


def local_head_dir(server: int) -> str:
    """The temporary folder of the Ray head ``atoll --backend ray`` (pid ``server``) started: every
    process of that cluster names it."""
    for child in psutil.Process(server).children():
        command = child.cmdline()
        if "--temp-dir" in command:
            return command[command.index("--temp-dir") + 1]
    raise SystemExit("atoll --backend ray started no local Ray head")


def serve_processes(server: int) -> dict[str, int]:
    """The Serve proxy, the ingress replica and the ``bench`` replica of the cluster ``atoll --backend
    ray`` (pid ``server``) started, by role (other clusters on this machine are not looked at)."""
    roles = {"serve proxy": "ProxyActor", "ingress replica": "ServeReplica:_ingress:",
             "agent replica": "ServeReplica:bench:"}
    found: dict[str, int] = {}
    for proc in psutil.Process(server).children(recursive=True):
        cmdline = " ".join(proc.cmdline())
        for role, marker in roles.items():
            if marker in cmdline:
                found[role] = proc.pid
    missing = roles.keys() - found.keys()
    if missing:
        raise SystemExit(f"cannot find the processes of: {', '.join(sorted(missing))}")
    return found


def row(label: str, result: WrkResult) -> str:
    cpu = "  ".join(f"{name} {us:,.0f}" for name, us in result.cpu_us.items())
    return (f"  {label:<34} {result.rps:8.1f} req/s  p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms  "
            f"errors {result.errors}" + (f"\n      CPU µs/request: {cpu}" if cpu else ""))


def until_new_replica(ingress: str, model: str, seen: set[str], content: str = "hi", timeout: float = 120) -> float:
    """Seconds until a chat to ``model`` is answered (200) by a replica not in ``seen``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            response = chat(ingress, model, content, timeout=10)
            if response.status_code == 200 and response.headers.get(REPLICA_HEADER) not in seen:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"no new replica of {model} answered within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    for name, toml in AGENTS.items():
        write_agent(folder / "agents" / name, toml)
    with run_redis(folder / "redis") as redis_url:
        home = folder / "home"
        home.mkdir()
        api_port, http_port = free_port(), free_port()
        log = folder / "atoll.log"
        env = server_env(HOME=str(home), ATOLL_HOME=str(home), ATOLL_SESSION_URL=redis_url)
        command = [sys.executable, "-m", "atoll", "--backend", "ray", "--agents-dir", str(folder / "agents"),
                   "--api-port", str(api_port), "--http-port", str(http_port)]
        ingress = f"http://127.0.0.1:{http_port}"
        started = time.monotonic()
        with open(log, "wb") as sink:
            process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            first_200(ingress, process, log)
            head_dir = local_head_dir(process.pid)
            print(f"cluster start to first 200 through the ingress: {time.monotonic() - started:.1f} s")
            overhead(ingress, folder, args, process.pid)
            scale_up(ingress)
            replacement(ingress, process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            process.wait(120)
            print(f"stop (SIGTERM to exit, applications deleted, head stopped): {time.monotonic() - stopping:.1f} s")
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if head_dir in " ".join(p.info["cmdline"] or ())]
    print(f"processes of its Ray cluster left: {len(left)}")


def overhead(ingress: str, folder: Path, args: argparse.Namespace, server: int) -> None:
    agent_file = folder / "agents" / "bench" / "agent.toml"
    with run_agent_server(agent_file, cwd=folder) as direct:
        body = dict(CHAT)
        print(f"\nrequest overhead, wrk -t1 -c{args.connections}, {args.seconds:g} s, non-streaming chat:")
        print("  unpinned (both cores shared):")
        plain_direct = wrk(f"{direct.url}/api/chat", body, connections=args.connections, seconds=args.seconds,
                           folder=folder)
        plain_ray = wrk(f"{ingress}/api/chat", body, connections=args.connections, seconds=args.seconds, folder=folder)
        print(row("direct agent process", plain_direct))
        print(row("Serve ingress -> agent replica", plain_ray))
        print(f"  ingress / direct: {plain_ray.rps / plain_direct.rps:.0%}")
        print("  pinned (processes under test on CPU 1, wrk on CPU 0):")
        pin(direct.process.pid, "1")
        pinned_direct = wrk(f"{direct.url}/api/chat", body, connections=args.connections, seconds=args.seconds,
                            folder=folder, watch={"agent": direct.process.pid}, cpus="0")
        pin(direct.process.pid, "0,1")
        ray_pids = serve_processes(server)
        for pid in ray_pids.values():
            pin(pid, "1")
        pinned_ray = wrk(f"{ingress}/api/chat", body, connections=args.connections, seconds=args.seconds,
                         folder=folder, watch=ray_pids, cpus="0")
        for pid in ray_pids.values():
            pin(pid, "0,1")
        print(row("direct agent process", pinned_direct))
        print(row("Serve ingress -> agent replica", pinned_ray))
        total_ray, total_direct = sum(pinned_ray.cpu_us.values()), sum(pinned_direct.cpu_us.values())
        print(f"  ingress / direct: {pinned_ray.rps / pinned_direct.rps:.0%}; CPU per request "
              f"{total_ray:,.0f} µs vs {total_direct:,.0f} µs ({total_ray / total_direct:.1f}x)")


def scale_up(ingress: str) -> None:
    first = chat(ingress, "scale").headers[REPLICA_HEADER]
    stop = threading.Event()

    def slow() -> None:
        while not stop.is_set():
            chat(ingress, "scale", "/slow 10 0.2", timeout=60)

    load = [threading.Thread(target=slow) for _ in range(4)]
    for thread in load:
        thread.start()
    try:
        took = until_new_replica(ingress, "scale", {first})
    finally:
        stop.set()
        for thread in load:
            thread.join(60)
    print(f"\nload start (4 concurrent slow chats, target 1 per replica) to a second replica serving: {took:.1f} s")


def replacement(ingress: str, server: int) -> None:
    before = chat(ingress, "bench").headers[REPLICA_HEADER]
    replica = serve_processes(server)["agent replica"]
    psutil.Process(replica).kill()
    took = until_new_replica(ingress, "bench", {before})
    print(f"replica kill (SIGKILL, the agent's only replica) to a new replica serving: {took:.1f} s")


if __name__ == "__main__":
    main()
