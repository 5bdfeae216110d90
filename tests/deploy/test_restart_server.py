"""``atoll restart-server`` against a Ray deployment server: refused (exit 2) before any signal is
sent, since that backend cannot hand its agents over to a re-executed server (SIGHUP would have
ended it without deleting its applications)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from atoll.deploy.config import STATE_FILE_NAME
from tests.deploy.conftest import child_env

#: Stands in for the Ray deployment server: alive until its stdin closes, and says so on a SIGHUP.
STAND_IN = """\
import signal, sys
signal.signal(signal.SIGHUP, lambda *_: print("SIGHUP", flush=True))
print("ready", flush=True)
sys.stdin.read()
"""


def test_restart_server_refuses_the_ray_backend_and_sends_no_signal(atoll_home: Path) -> None:
    atoll_home.mkdir(parents=True)
    stand_in = subprocess.Popen([sys.executable, "-c", STAND_IN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
    try:
        assert stand_in.stdout is not None and stand_in.stdout.readline() == "ready\n"
        (atoll_home / STATE_FILE_NAME).write_text(json.dumps(
            {"pid": stand_in.pid, "backend": "ray", "url": "http://127.0.0.1:8080", "ready": True, "agents": []}))
        done = subprocess.run([sys.executable, "-m", "atoll", "restart-server", "--timeout", "1"],
                              env={**child_env(), "ATOLL_HOME": str(atoll_home)}, capture_output=True, text=True,
                              timeout=60)
    finally:
        heard, _ = stand_in.communicate("", timeout=10)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "restart-server is for the local backend" in done.stderr
    assert "POST /agents/NAME/restart" in done.stderr
    assert heard == "" and stand_in.returncode == 0  # no SIGHUP reached it
