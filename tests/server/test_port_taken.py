"""A port already in use stops the agent server before it opens anything: exit 1 with a clear
message, and no session store created (the runtime was built, and leaked, before binding)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.support.servers import scripted_agent_toml, server_env, write_agent


def test_a_taken_port_opens_nothing(tmp_path: Path) -> None:
    home, atoll_home = tmp_path / "home", tmp_path / "atoll-home"
    home.mkdir()
    agent = write_agent(tmp_path / "agent", scripted_agent_toml("porty"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "atoll", "--server", "--host", "127.0.0.1", "--port", str(port),
                               "--agent", str(agent)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              env=server_env(HOME=str(home), ATOLL_HOME=str(atoll_home)))
    assert done.returncode == 1, done.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert not list(atoll_home.rglob("*.db")) and not list(tmp_path.rglob("*.db")), list(tmp_path.rglob("*"))
