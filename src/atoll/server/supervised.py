"""Serving one agent, alone or under the deployment server: sockets, draining, lease, exit record.

An agent started by hand (``atoll --server --port 8100``) binds its own port and drains on
SIGTERM/SIGINT. The deployment server adds (see ``docs/deployment.md``):

``--fd N``
    the agent's own listening socket, bound by the supervisor on an ephemeral loopback port; the
    supervisor probes it, so it knows *this* version is healthy.
``--public-fd N``
    the agent's stable port. The supervisor binds it once and passes the same socket to every
    version; a version accepts on it only once it is healthy, and stops accepting when it drains,
    so the socket (and its queue of waiting connections) is never closed while a version runs.
    A later supervisor that adopted this agent asks for it over ``handover_address(pid)``.
``--lease FILE --orphan-grace S``
    the supervisor touches FILE while it lives; after S seconds without a touch (it died and no
    successor adopted this agent) the agent drains and exits, closing its MCP servers.
``--exit-file FILE``
    the exit status is written there (an adopting supervisor is not the parent, cannot wait).

Draining: stop accepting on every socket, answer every further response with ``Connection: close``
(so keep-alive clients reconnect, to the next version, instead of meeting a closed socket), wait
until the open connections have closed or ``drain_timeout`` passed (under the deployment server
only: alone there is no next version), then uvicorn's own shutdown lets streams finish and closes
the app. A second signal stops at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from atoll.httpkit.serving import DrainGate
from atoll.net import handover_address

logger = logging.getLogger("atoll")



@dataclass(frozen=True)
class Supervision:
    fd: int | None = None
    public_fd: int | None = None
    lease: Path | None = None
    orphan_grace: float = 60.0
    exit_file: Path | None = None


def supervision_of(args: argparse.Namespace) -> Supervision:
    return Supervision(fd=args.fd, public_fd=args.public_fd, lease=args.lease,
                       orphan_grace=args.orphan_grace, exit_file=args.exit_file)


def inherited_socket(fd: int) -> socket.socket:
    return socket.socket(fileno=fd)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ``AgentServing`` drains first. (uvicorn would
    re-raise the signal after shutdown, so the process died "by signal"; a clean drain exits 0.)"""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AgentServing:
    """The agent's uvicorn server(s) on one event loop, plus the lease watch and the handover."""

    def __init__(self, app: Any, config: dict[str, Any], sock: socket.socket, supervision: Supervision,
                 *, drain_timeout: float, ready: Any) -> None:
        self.gate = DrainGate(app)
        self.config = config
        self.sock = sock
        self.supervision = supervision
        self.drain_timeout = drain_timeout
        #: ``ready()`` is true once the agent can answer chats (its runtime is healthy).
        self.ready = ready
        self.main = _Server(uvicorn.Config(self.gate, **config))
        self.public: _Server | None = None
        self._draining: asyncio.Task[None] | None = None

    def run(self) -> int:
        code = 1
        try:
            # uvicorn's own choice of loop (uvloop when installed), as ``uvicorn.Server.run`` makes it.
            with asyncio.Runner(loop_factory=self.main.config.get_loop_factory()) as runner:
                runner.run(self._serve())
            code = 0
        finally:
            self._write_exit(code)
        return code

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.drain, f"signal {signal.Signals(sig).name}")
        helpers = []
        if self.supervision.public_fd is not None:
            public = inherited_socket(self.supervision.public_fd)
            _serve_handover(self.supervision.public_fd)
            helpers.append(asyncio.create_task(self._serve_public(public)))
        if self.supervision.lease is not None:
            helpers.append(asyncio.create_task(self._watch_lease(self.supervision.lease)))
        try:
            await self.main.serve(sockets=[self.sock])
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _serve_public(self, sock: socket.socket) -> None:
        """Accept on the stable port only once healthy: a starting (or failing) version never
        takes a connection from the version still serving."""
        while not (self.main.started and self.ready()):
            if self.gate.draining or self.main.should_exit:
                return
            await asyncio.sleep(0.05)
        config = {**self.config, "lifespan": "off"}
        self.public = _Server(uvicorn.Config(self.gate, **config))
        logger.info("serving the stable port %s", sock.getsockname()[1])
        await self.public.serve(sockets=[sock])

    async def _watch_lease(self, lease: Path) -> None:
        grace = self.supervision.orphan_grace
        last_seen = time.time()
        while True:
            await asyncio.sleep(min(1.0, grace / 4))
            now = time.time()
            with contextlib.suppress(OSError):
                last_seen = max(last_seen, os.stat(lease).st_mtime)
            if now - last_seen > grace:
                logger.warning("the deployment server has not renewed its lease for %.0f s (orphan_grace "
                               "%g s): shutting down", now - last_seen, grace)
                self.drain("orphaned")
                return

    def drain(self, reason: str) -> None:
        if self._draining is not None:  # a second signal: stop now
            self.main.should_exit = self.main.force_exit = True
            return
        logger.info("draining (%s)", reason)
        self._draining = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        self.gate.draining = True
        servers = [self.main, *([self.public] if self.public else [])]
        for server in servers:
            for listener in getattr(server, "servers", []):
                listener.close()
        # Alone (started by hand) there is no next version to hand clients to: uvicorn's own
        # shutdown (in-flight requests finish, idle connections close) is the drain.
        deadline = time.monotonic() + (self.drain_timeout if self.supervision.public_fd is not None else 0)
        # uvicorn's connection set has no event to wait on: poll it.
        while any(s.server_state.connections for s in servers) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for server in servers:
            server.should_exit = True

    def _write_exit(self, code: int) -> None:
        path = self.supervision.exit_file
        if path is None:
            return
        with contextlib.suppress(OSError):
            path.write_text(json.dumps({"pid": os.getpid(), "code": code, "at": time.time()}))


def _serve_handover(public_fd: int) -> None:
    """Give the stable-port socket to a supervisor that adopted this agent (same user only), so it
    can pass the very same socket to the next version. A daemon thread on an abstract unix socket."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(handover_address(os.getpid()))
    except OSError as exc:
        logger.warning("no socket hand-over: %s", exc)
        listener.close()
        return
    listener.listen(4)

    def serve() -> None:
        creds = struct.calcsize("3i")
        while True:
            conn, _ = listener.accept()
            with conn:
                _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, creds))
                if uid == os.getuid():
                    with contextlib.suppress(OSError):
                        socket.send_fds(conn, [b"fd"], [public_fd])

    threading.Thread(target=serve, name="atoll-handover", daemon=True).start()
