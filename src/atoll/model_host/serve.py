"""``atoll model-host``: load one GGUF model and serve it to the agents on loopback.

The deployment server starts it (``atoll.deploy.model_hosts``) with the same supervision flags as an
agent (``--fd``, ``--public-fd``, ``--lease``, ``--orphan-grace``, ``--exit-file``; see
``atoll.server.supervised``), so it is probed, drained, orphan-stopped and adopted like one. Exit
code 2 is a configuration error (no model file, no secret): the supervisor does not restart it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from atoll.config import LLMConfig
from atoll.errors import AtollError, ConfigError
from atoll.httpkit.serving import UVICORN_OPTIONS
from atoll.logs import setup_logging
from atoll.net import bind_tcp
from atoll.server.supervised import AgentServing, inherited_socket, supervision_of

logger = logging.getLogger("atoll")

#: Seconds a stopping host lets the running generation finish. It does not wait for idle
#: connections to go (an agent's drain does, for its next version): a host has no next version
#: running beside it, and its callers' pools reconnect to the restarted one.
SHUTDOWN_GRACE_S = 10


def read_secret(path: Path) -> bytes:
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the model host's secret: {exc.strerror}", path=str(path)) from exc
    if len(secret) < 16:
        raise ConfigError("the model host's secret is too short (16 bytes at least)", path=str(path))
    return secret


def serve(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, "text")
    try:
        from atoll.model_host.app import ModelHost, create_app
        from atoll.providers.llamacpp import LlamaCppProvider

        secret = read_secret(args.secret_file)
        provider = LlamaCppProvider(LLMConfig(provider="local", model_path=str(args.model) if args.model else None,
                                              context_length=args.context_length,
                                              extra={"n_threads": args.threads}))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AtollError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        sock = inherited_socket(args.fd) if args.fd is not None else bind_tcp(args.host, args.port)
    except OSError as exc:
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
        print(f"error: port {args.port} on {args.host} {reason}; choose another with --port", file=sys.stderr)
        return 1
    host = ModelHost(provider, secret)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await provider.start()
        host.loaded = True
        address, port = sock.getsockname()[:2]
        logger.info("model host serving %s (%s) on %s:%s", provider.model, provider.model_path, address, port)
        try:
            yield
        finally:
            await provider.aclose()

    app = create_app(host, lifespan=lifespan)
    uvicorn_config = {"log_level": args.log_level, "log_config": None, "access_log": False, "lifespan": "on",
                      "timeout_graceful_shutdown": SHUTDOWN_GRACE_S, **UVICORN_OPTIONS}
    return AgentServing(app, uvicorn_config, sock, supervision_of(args), drain_timeout=0,
                        ready=lambda: host.loaded).run()
