"""The supervisor's memory is budgeted (<= 50 MB with 10 agents; benchmarks/bench_deploy.py measures
it). Its cheapest guards: the deployment server does not import the agent server's heavy parts, and
a running one, after serving the management API, the metrics, the dashboard and the front door, has
not loaded what it keeps out (atoll.deploy.footprint) nor what it imports only when first used."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.deploy.conftest import child_env, free_base_port, write_agent
from tests.support.waiting import wait_until

HEAVY = ("fastapi", "atoll.wire", "atoll.server", "atoll.agent", "llama_cpp", "mcp", "openai", "ollama",
         "prometheus_client")
#: What a running supervisor does without: uvicorn's command line and its supervisors (click,
#: multiprocessing), optional extras (HTTP/2, zstd, --reload, httpx's CLI with rich), WebSockets
#: (no route is one), and the agents' sessions (needed only to delete an agent).
KEPT_OUT = ("uvicorn.main", "click", "multiprocessing", "h2", "zstandard", "watchfiles", "rich", "websockets",
            "atoll.sessions")
#: ``python -c`` as ``python -m atoll`` runs, writing the names of the loaded modules when it exits
#: (a ``None`` in ``sys.modules`` is a module kept out).
RUN_AND_LIST_MODULES = """
import atexit, sys
atexit.register(lambda out=sys.argv[1]: open(out, "w").write(
    "\\n".join(sorted(name for name, module in sys.modules.items() if module is not None))))
from atoll.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


def test_deployment_server_imports_stay_light() -> None:
    code = ("import sys, atoll.cli, atoll.deploy.cli, atoll.deploy.service; atoll.cli.build_parser(); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_running_deployment_server_keeps_unused_parts_out(tmp_path: Path) -> None:
    write_agent(tmp_path / "agents", "echo")
    home, modules, log = tmp_path / "home", tmp_path / "modules.txt", tmp_path / "server.log"
    base = free_base_port()
    url = f"http://127.0.0.1:{base}"
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-c", RUN_AND_LIST_MODULES, str(modules), "--agents-dir",
                                 str(tmp_path / "agents"), "--api-port", str(base), "--base-port", str(base + 1)],
                                env={**child_env(), "ATOLL_HOME": str(home)}, stdout=sink, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
            def running() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"exited with {proc.returncode}: {log.read_text()}")
                token = home / "admin_token"
                if not token.exists():
                    return False
                client.headers["Authorization"] = f"Bearer {token.read_text().strip()}"
                try:
                    agents = client.get("/agents").json()["agents"]
                except httpx.TransportError:
                    return False
                return [a["status"] for a in agents] == ["running"]

            wait_until(running, timeout=60, what="the agent running")
            assert "atoll_" in client.get("/metrics").text
            assert client.get("/agents/echo/logs").status_code == 200
            assert client.get("/ui").status_code == 200
            chat = client.post("/api/chat", json={"model": "echo", "stream": False,
                                                  "messages": [{"role": "user", "content": "ping"}]})
            assert chat.json()["message"]["content"] == "You said: ping"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    loaded = set(modules.read_text().split())
    assert "atoll.deploy.service" in loaded and "uvicorn.server" in loaded  # the list is the server's
    assert sorted(m for m in loaded if any(m == k or m.startswith(f"{k}.") for k in KEPT_OUT)) == []


def test_uvicorn_made_lazy_still_has_every_name() -> None:
    """The supervisor's ``uvicorn`` package runs its ``__init__`` on first use of a name it does not
    import itself: every name then is what uvicorn defines."""
    code = ("import sys; from atoll.deploy.footprint import keep_light; keep_light(); import uvicorn; "
            "from uvicorn import Config; import uvicorn.config; assert Config is uvicorn.config.Config; "
            "assert 'uvicorn.main' not in sys.modules; import uvicorn.server; "
            "run, server = uvicorn.run, uvicorn.Server; "
            "assert run is sys.modules['uvicorn.main'].run and server is uvicorn.server.Server; "
            "assert uvicorn.__version__ and uvicorn.__all__; print(hasattr(uvicorn, 'no_such_name'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
