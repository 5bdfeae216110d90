"""Drive ``wrk`` (C, so the load generator is never the bottleneck), pin processes with ``taskset``
and account the CPU time each process spent per request."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psutil

POST_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


@dataclass
class WrkResult:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    avg_ms: float
    errors: int
    #: CPU microseconds per request spent by each watched process (user + system).
    cpu_us: dict[str, float] = field(default_factory=dict)


def parse(out: str) -> WrkResult:
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
    return WrkResult(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        requests=requests,
        p50_ms=_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        p99_ms=_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        avg_ms=_ms(re.search(r"^\s+Latency\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        errors=errors,
    )


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def pin(pid: int, cpus: str) -> None:
    """``taskset`` every thread of ``pid`` onto ``cpus`` (e.g. ``"1"``, ``"0,1"``)."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, capture_output=True)


def cpu_count() -> int:
    return len(psutil.Process().cpu_affinity() or [0])


def wrk(url: str, body: dict[str, object], *, connections: int, seconds: float, folder: Path,
        watch: dict[str, int] | None = None, cpus: str | None = None) -> WrkResult:
    """``wrk -t1 -cN -dS --latency`` POSTing ``body``; with ``watch``, the CPU each process spent."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run `make bench` (or scripts/install-bench-tools.sh)")
    script = folder / "post.lua"
    script.write_text(POST_SCRIPT.format(body=json.dumps(json.dumps(body))))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s", "--latency",
               "-s", str(script), url]
    if cpus is not None:
        command = ["taskset", "-c", cpus, *command]
    watch = watch or {}
    before = {name: cpu_seconds(pid) for name, pid in watch.items()}
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = parse(out)
    result.cpu_us = {name: (cpu_seconds(pid) - before[name]) * 1e6 / max(1, result.requests)
                     for name, pid in watch.items()}
    return result
