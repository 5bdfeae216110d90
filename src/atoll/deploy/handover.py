"""The agents' stable ports: one listening socket per port, held by the supervisor and passed to
every version of the agent, so a redeploy, a restart or a supervisor restart never closes it.

Why one socket and not ``SO_REUSEPORT``: with several sockets on a port the kernel hashes each new
connection to one of them, and closing a socket resets the connections waiting in its queue. With
one socket the queue is shared: a version that drains stops accepting, and whatever is queued is
accepted by the next one. Nobody is refused, nobody is reset.

Where the socket comes from:

- bound here the first time an agent gets its port;
- inherited across ``atoll restart-server`` (the supervisor re-executes itself; ``ATOLL_LISTEN_FDS``
  names each inherited fd by port);
- after a crash of the supervisor, asked from the adopted agent over its hand-over socket
  (``atoll.net.handover_address``; the agent answers only to the same user, with ``SCM_RIGHTS``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket

from atoll.net import bind_tcp, handover_address

logger = logging.getLogger(__name__)

#: ``{"front": fd, "agents": {"<port>": fd}}`` across a re-exec of the deployment server.
INHERIT_ENV = "ATOLL_LISTEN_FDS"


class Listeners:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._by_port: dict[int, socket.socket] = {}

    def get(self, port: int) -> socket.socket:
        """The listening socket of ``port``, bound now if not held yet (``OSError`` if taken)."""
        sock = self._by_port.get(port)
        if sock is None:
            sock = self._by_port[port] = bind_tcp(self.host, port, backlog=1024)
        return sock

    def held(self, port: int) -> bool:
        return port in self._by_port

    def fetch_from(self, pid: int, port: int) -> bool:
        """Take ``port``'s socket from the adopted agent ``pid``; False if it would not give it."""
        if port in self._by_port:
            return True
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(2.0)
                conn.connect(handover_address(pid))
                _, fds, _, _ = socket.recv_fds(conn, 16, 1)
        except OSError as exc:
            logger.warning("agent pid %s did not hand over port %s: %s", pid, port, exc)
            return False
        if not fds:
            return False
        sock = socket.socket(fileno=fds[0])
        if sock.getsockname()[1] != port:
            sock.close()
            return False
        self._by_port[port] = sock
        return True

    def release(self, port: int) -> None:
        sock = self._by_port.pop(port, None)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        for port in list(self._by_port):
            self.release(port)

    # ---- across a re-exec -----------------------------------------------------------------------

    def inheritable(self) -> dict[str, int]:
        for sock in self._by_port.values():
            sock.set_inheritable(True)
        return {str(port): sock.fileno() for port, sock in self._by_port.items()}

    def adopt_inherited(self, fds: dict[str, int]) -> None:
        for port, fd in fds.items():
            with contextlib.suppress(OSError, ValueError):
                sock = socket.socket(fileno=fd)
                sock.set_inheritable(False)
                self._by_port[int(port)] = sock


def inherited() -> tuple[socket.socket | None, dict[str, int]]:
    """The front door's socket and the agents' sockets handed down by ``restart-server``."""
    raw = os.environ.pop(INHERIT_ENV, None)
    if not raw:
        return None, {}
    try:
        data = json.loads(raw)
        front = socket.socket(fileno=int(data["front"]))
        front.set_inheritable(False)
        agents = {str(k): int(v) for k, v in dict(data.get("agents", {})).items()}
    except (ValueError, KeyError, TypeError, OSError) as exc:
        logger.warning("ignoring %s: %s", INHERIT_ENV, exc)
        return None, {}
    return front, agents


def hand_down(front: socket.socket, listeners: Listeners) -> dict[str, str]:
    """The environment entry that passes the sockets to the re-executed deployment server."""
    front.set_inheritable(True)
    return {INHERIT_ENV: json.dumps({"front": front.fileno(), "agents": listeners.inheritable()})}
