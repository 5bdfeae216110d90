"""Listening sockets and addresses, shared by the agent server and the deployment server."""

from __future__ import annotations

import functools
import ipaddress
import socket

#: Sent by the deployment server's health probes: an agent counts these requests in its metrics but
#: leaves them out of its access log (one probe every few seconds would drown the real requests).
PROBE_HEADER = "X-Atoll-Probe"

def bind_tcp(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket, bound before anything else starts (so "port in use" is one clear
    error and no race). Raises ``OSError`` when the address cannot be bound.

    ``proto`` is ``IPPROTO_TCP`` on purpose: asyncio only sets ``TCP_NODELAY`` on accepted sockets
    whose proto says TCP, and without it Nagle and delayed ACKs add ~40 ms to every request on a
    keep-alive connection.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


@functools.lru_cache(maxsize=1024)
def is_loopback(host: str) -> bool:
    """True for loopback addresses only; a host name other than ``localhost`` counts as exposed.
    Remembered: every request asks it about the listening address and its ``Host`` header."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def handover_address(pid: int) -> str:
    """The abstract unix socket on which an agent started by the deployment server hands its
    stable-port listening socket to a supervisor that adopted it (``atoll.server.supervised``)."""
    return f"\0atoll-handover-{pid}"
