"""Port allocation for agents: from ``base_port`` upward, skipping ports in use (bind test).

An agent keeps its port for as long as the allocator lives, so restarts reuse it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable

from atoll.deploy.errors import PortUnavailable

SCAN_LIMIT = 1000


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a listening socket could bind ``host:port`` now.

    ``SO_REUSEADDR`` is set as uvicorn sets it, so a port left in TIME_WAIT counts as free while a
    port someone listens on does not.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PortAllocator:
    def __init__(
        self,
        base_port: int,
        *,
        reserved: Iterable[int] = (),
        is_free: Callable[[int], bool] = port_is_free,
        limit: int = SCAN_LIMIT,
    ) -> None:
        self.base_port = base_port
        self.reserved = set(reserved)
        self._is_free = is_free
        self._limit = limit
        self._assigned: dict[str, int] = {}

    def assign(self, name: str, preferred: int | None = None) -> int:
        """The agent's port: the one it already has, else ``preferred`` if free, else the first free
        port from ``base_port``."""
        if name in self._assigned:
            return self._assigned[name]
        candidates: list[int] = [preferred] if preferred else []
        candidates += range(self.base_port, min(self.base_port + self._limit, 65536))
        taken = set(self._assigned.values()) | self.reserved
        for port in candidates:
            if port not in taken and self._is_free(port):
                self._assigned[name] = port
                return port
        raise PortUnavailable(f"no free port from {self.base_port} for agent '{name}'")

    def claim(self, name: str, port: int) -> bool:
        """Give ``name`` the port its adopted process already listens on, if nobody else has it."""
        if port in self.reserved or any(p == port for n, p in self._assigned.items() if n != name):
            return False
        self._assigned[name] = port
        return True

    def release(self, name: str) -> None:
        self._assigned.pop(name, None)
