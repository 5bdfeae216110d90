"""Benchmark 1: ``/api/chat`` requests/s and latency of atoll with an instant scripted LLM,
against a bare Starlette app doing the same JSON round trip. Same client, same run; the figure
that matters is the ratio (target: atoll >= 70 % of the bare app's requests/s).

The load comes from ``wrk`` (C, ``apt-get install wrk``) when it is installed, so the client is
not the bottleneck; otherwise from an httpx client in this process, which on a 2-core machine
saturates before either server does (both ratios are printed when both are available).

    python benchmarks/bench_chat_overhead.py [--requests 2000] [--concurrency 8] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, drive, free_port, run_agent_server, server_env, wait_healthy, write_agent

AGENT = """
[agent]
name = "bench"
[llm]
provider = "tests.support.scripted:ScriptedProvider"
[server]
session_store = "memory"
"""


def body() -> dict:
    return {"model": "bench", "stream": False, "messages": [{"role": "user", "content": "hello benchmark"}]}


async def measure(url: str, total: int, concurrency: int) -> object:
    await drive(url, body(), total=min(200, total), concurrency=concurrency)  # warm-up
    return await drive(url, body(), total=total, concurrency=concurrency)


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""


def wrk(url: str, seconds: int, concurrency: int, folder: Path) -> tuple[float, str]:
    script = folder / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(body())))
    out = subprocess.run(["wrk", "-t2", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)  # type: ignore[union-attr]
    return rps, f"{rps:8.1f} req/s   p50 {p50:>8s}   p99 {p99:>8s}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="duration of each wrk run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        agent = write_agent(folder, AGENT)
        port = free_port()
        log = folder / "bare.log"
        bare = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "bare_app.py"), str(port)],
                                stdout=log.open("w"), stderr=subprocess.STDOUT, env=server_env())
        try:
            bare_url = f"http://127.0.0.1:{port}"
            wait_healthy(bare_url, bare, log)
            with run_agent_server(agent, cwd=folder, args=["--log-level", "warning"]) as atoll:
                urls = {"bare": bare_url + "/api/chat", "atoll": atoll.url + "/api/chat"}
                results: dict[str, list] = {"bare": [], "atoll": []}
                wrk_results: dict[str, list[tuple[float, str]]] = {"bare": [], "atoll": []}
                for _ in range(args.rounds):  # interleave, so machine noise hits both alike
                    for name, url in urls.items():
                        results[name].append(asyncio.run(measure(url, args.requests, args.concurrency)))
                        if shutil.which("wrk"):
                            wrk_results[name].append(wrk(url, args.seconds, args.concurrency, folder))
        finally:
            bare.terminate()
            bare.wait(10)
    best = {name: max(runs, key=lambda r: r.rps) for name, runs in results.items()}
    print(f"/api/chat, {args.requests} requests x {args.rounds} rounds, concurrency {args.concurrency} (best round)")
    for name in ("bare", "atoll"):
        print(f"  {name:6s} {best[name].summary()}")
    ratio = best["atoll"].rps / best["bare"].rps
    print(f"  ratio atoll/bare requests/s: {ratio:.2f}  (target >= 0.70)  {'OK' if ratio >= 0.7 else 'BELOW TARGET'}")
    if all(wrk_results.values()):
        print(f"/api/chat with wrk, {args.seconds} s x {args.rounds} rounds, {args.concurrency} connections (best)")
        top = {name: max(runs) for name, runs in wrk_results.items()}
        for name in ("bare", "atoll"):
            print(f"  {name:6s} {top[name][1]}")
        ratio = top["atoll"][0] / top["bare"][0]
        print(f"  ratio atoll/bare requests/s: {ratio:.2f}  (target >= 0.70)  "
              f"{'OK' if ratio >= 0.7 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
