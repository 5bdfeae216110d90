"""Dashboard measurement: page weight on first load and time to first paint of the agents list with
50 agents (2 running, 48 with ``auto_start = false``), in headless Chromium, cold cache each time.

Runs the real CLI (``python -m atoll``) with scripted-LLM agents on 127.0.0.1. Baseline in the same
run: the same browser loading a static asset of the same server (the cost of a navigation alone).
Usage: ``.venv/bin/python benchmarks/bench_dashboard.py [runs]``. Not part of ``make test``.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.deploy.conftest import free_base_port  # noqa: E402
from tests.support.browser import chromium  # noqa: E402

TOKEN = "bench-dashboard-token"
AGENTS = 50
RUNNING = 2
AGENT = """[agent]
name = "{name}"
[llm]
provider = "tests.support.scripted:ScriptedProvider"
[server]
session_store = "memory"
[deployment]
auto_start = {auto}
"""
#: Records when the 50th row is in the table and when the frame showing it is painted.
OBSERVER = """
new MutationObserver((_, observer) => {
  const body = document.getElementById('agents-body');
  if (body && body.children.length >= ROWS && !window.rowsAt) {
    window.rowsAt = performance.now();
    requestAnimationFrame(() => setTimeout(() => { window.paintedAt = performance.now(); }, 0));
    observer.disconnect();
  }
}).observe(document, {subtree: true, childList: true});
""".replace("ROWS", str(AGENTS))


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for index in range(AGENTS):
            folder = root / "agents" / f"agent-{index:02d}"
            folder.mkdir(parents=True)
            (folder / "agent.toml").write_text(AGENT.format(name=folder.name, auto="true" if index < RUNNING
                                                            else "false"))
        base = free_base_port(AGENTS + 5)
        config = root / "deployment_servers.json"
        config.write_text(json.dumps({"api_port": base, "base_port": base + 1, "auto_discover_port": False,
                                      "admin_token": TOKEN, "max_agents": AGENTS}))
        env = {**os.environ, "ATOLL_HOME": str(root / "home"),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), str(REPO),
                                                           os.environ.get("PYTHONPATH")]))}
        url = f"http://127.0.0.1:{base}"
        server = subprocess.Popen([sys.executable, "-m", "atoll", "--config", str(config), "--agents-dir",
                                   str(root / "agents")], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            return measure(url, runs)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)


def _wait_running(url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            agents = httpx.get(f"{url}/agents", headers={"Authorization": f"Bearer {TOKEN}"}).json()["agents"]
            if sum(a["status"] == "running" for a in agents) == RUNNING:
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise SystemExit("the deployment server did not start its agents")


def measure(url: str, runs: int) -> int:
    _wait_running(url)
    weights, fcps, rows, painted, baseline = [], [], [], [], []
    with chromium() as browser:
        for _ in range(runs):
            context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=url)
            page = context.new_page()
            page.goto("/ui/assets/icon.svg")
            baseline.append(page.evaluate("performance.getEntriesByType('navigation')[0].responseEnd"))
            signin = page.request.post("/ui/session", data={"token": TOKEN}, headers={"Origin": url})
            assert signin.ok, signin.text()
            context.close()
            # A fresh context with only the cookie: nothing cached.
            cookies = [c for c in signin.headers_array if c["name"].lower() == "set-cookie"]
            context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=url)
            value = cookies[0]["value"].split(";")[0].split("=", 1)[1]
            context.add_cookies([{"name": "atoll_dashboard", "value": value, "url": url}])
            context.add_init_script(OBSERVER)
            page = context.new_page()
            page.goto("/ui")
            page.wait_for_function("window.paintedAt !== undefined", timeout=60_000)
            timing = page.evaluate("""() => {
                const nav = performance.getEntriesByType('navigation')[0];
                const resources = performance.getEntriesByType('resource')
                    .filter((r) => !r.name.endsWith('/agents/events'));
                const fcp = performance.getEntriesByType('paint').find((p) => p.name === 'first-contentful-paint');
                return {bytes: nav.transferSize + resources.reduce((n, r) => n + r.transferSize, 0),
                        files: resources.map((r) => [r.name.split("/").pop(), r.transferSize,
                                                     Math.round(r.startTime), Math.round(r.responseEnd)]),
                        fcp: fcp ? fcp.startTime : null, rows: window.rowsAt, painted: window.paintedAt};
            }""")
            weights.append(timing["bytes"] / 1024)
            fcps.append(timing["fcp"])
            rows.append(timing["rows"])
            painted.append(timing["painted"])
            files = timing["files"]
            context.close()
    med = statistics.median
    print(f"agents: {AGENTS} ({RUNNING} running, {AGENTS - RUNNING} auto_start = false), runs: {runs}, cold cache")
    print(f"page weight on first load: {med(weights):.1f} KB transferred (HTML, CSS, JS, icon, /agents JSON; "
          f"the live event stream is left out)")
    print("  " + ", ".join(f"{f[0] or 'ui'} {f[1] / 1024:.1f} KB ({f[2]}-{f[3]} ms)" for f in files))
    print(f"first contentful paint:           {med(fcps):7.1f} ms")
    print(f"agents list: 50 rows in the DOM:  {med(rows):7.1f} ms   painted: {med(painted):7.1f} ms")
    print(f"baseline (a static asset's navigation): {med(baseline):7.1f} ms  -> agents list painted at "
          f"{med(painted) / med(baseline):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
