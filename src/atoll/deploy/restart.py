"""Restarting the deployment server without touching its agents: ``atoll restart-server`` sends
SIGHUP to the running one (``pid`` in its state file). On SIGHUP the server stops accepting on the
front door (connections wait in the socket's queue), lets its relays finish (``drain_timeout``),
records its agents, renews their lease and re-executes itself with the same command line (so a
new atoll version or a changed ``deployment_servers.json`` takes effect). The front door's socket
and the agents' stable-port sockets are inherited across the ``exec`` (``ATOLL_LISTEN_FDS``); the
new process adopts the agents (``atoll.deploy.adopt``). The pid stays the same, so systemd sees no
restart at all."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import time
from typing import NoReturn

from atoll.deploy.config import state_path
from atoll.deploy.handover import Listeners, hand_down
from atoll.deploy.state import read_state

logger = logging.getLogger(__name__)

#: Why ``restart-server`` refuses the Ray backend (also logged by it on a SIGHUP, ``atoll.ray.server``).
RAY_REFUSAL = ("restart-server is for the local backend: the Ray backend cannot hand its agents over to a "
               "re-executed server; restart agents on Ray with POST /agents/NAME/restart")


def reexec(front: socket.socket, listeners: Listeners) -> NoReturn:
    env = {**os.environ, **hand_down(front, listeners)}
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, list(sys.orig_argv), env)


def restart_server(args: argparse.Namespace) -> int:
    """``atoll restart-server`` (see :mod:`atoll.commands.restart_server`)."""
    path = state_path()
    before = read_state(path)
    pid = before.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        print(f"error: no deployment server is running (no live pid in {path})", file=sys.stderr)
        return 1
    if before.get("backend") == "ray":
        print(f"error: {RAY_REFUSAL}", file=sys.stderr)
        return 2
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        now = read_state(path)
        if now.get("started") != before.get("started") and now.get("ready"):
            print(f"ATOLL deployment server restarted (pid {pid}, atoll {now.get('atoll_version')}); "
                  f"{len(now.get('agents', []))} agent(s) kept running.")
            _print_versions(now)
            return 0
        if not _alive(pid):
            print(f"error: the deployment server (pid {pid}) exited while restarting; see its log",
                  file=sys.stderr)
            return 1
        time.sleep(0.1)
    print(f"error: the deployment server did not come back within {args.timeout:g} s", file=sys.stderr)
    return 1


def _print_versions(state: dict[str, object]) -> None:
    server_version = state.get("atoll_version")
    agents = state.get("agents")
    for agent in agents if isinstance(agents, list) else []:
        version = agent.get("atoll_version")
        note = "" if version == server_version else \
            f"  (older: roll it with `curl -X POST {state.get('url')}/agents/{agent.get('name')}/restart`)"
        print(f"  {agent.get('name')}: pid {agent.get('pid')}, port {agent.get('port')}, atoll {version}{note}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
