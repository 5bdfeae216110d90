"""``atoll --server``: run one agent as an HTTP server."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import math
from typing import Any

from rich.console import Console

from atoll.config import AgentConfig, env, load_agent_config
from atoll.errors import AtollError, ConfigError
from atoll.httpkit.bearer import fingerprint as key_fingerprint
from atoll.httpkit.serving import UVICORN_OPTIONS, tls_options
from atoll.logs import setup_logging
from atoll.net import bind_tcp, is_loopback
from atoll.server.app import create_app
from atoll.server.health import mcp_summary, tool_servers, tools_warning
from atoll.server.runtime import AgentRuntime
from atoll.server.supervised import AgentServing, inherited_socket, supervision_of

logger = logging.getLogger("atoll")


def startup_block(config: AgentConfig, runtime: AgentRuntime, host: str, port: int, scheme: str) -> str:
    """What ``atoll --server`` prints once the agent is up: what really connected, not what was asked."""
    shown_host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, host)
    provider = runtime.provider
    upstream = f" at {provider.base_url}" if provider.base_url else ""
    reachable = "" if runtime.backend.error is None else f"  ({runtime.backend.error})"
    mcp, children = tool_servers(runtime)
    degraded = runtime.backend.error is not None or any(s.get("state") == "failed" for s in mcp.values())
    lines = [
        f"[{'DEGRADED' if degraded else 'OK'}] atoll agent server '{config.agent.name}' listening on "
        f"{scheme}://{host}:{port}",
        f"  Agent:    {config.agent.name} {config.agent.version}"
        + (f" ({config.source})" if config.source else " (built-in default agent)"),
        f"  LLM:      {provider.name} / {provider.model}{upstream}{reachable}",
        f"  MCP:      {mcp_summary(runtime)}",
    ]
    if children:
        lines.append(f"  Agents:   {len(children)} sub-agent(s): {', '.join(children)}")
    lines.append(f"  URL:      {scheme}://{shown_host}:{port}  (Ollama API, OpenAI API under /v1; "
                 f"model name '{runtime.model_tag}')")
    keys = len(config.server.api_keys)
    lines.append(f"  Auth:     {keys} API key(s); clients send 'Authorization: Bearer <key>'" if keys
                 else "  Auth:     none (no API key configured)")
    if warning := tools_warning(runtime):
        lines.append(f"  WARNING:  {warning}")
    if not is_loopback(host) and not config.server.api_keys:
        lines.append(f"  WARNING:  listening on {host} (beyond loopback) with no API key configured: "
                     "anyone who can reach this port can use the agent. Set [server] api_keys or ATOLL_API_KEYS.")
    return "\n".join(lines)


def _serve_mcp_stdio(config: AgentConfig, runtime: AgentRuntime, err: Console) -> int:
    """``--mcp-stdio``: MCP on stdin/stdout, no port; the start-up block and logs go to stderr."""
    from atoll.server.mcp_server import serve_stdio

    key = env("ATOLL_API_KEY")
    if key is not None and key not in config.server.api_keys:
        err.print("error: ATOLL_API_KEY is not one of the agent's [server] api_keys", markup=False)
        return 2
    err.print(f"[OK] atoll agent '{config.agent.name}' serving MCP on stdio ({config.source or 'built-in agent'})",
              markup=False)
    asyncio.run(serve_stdio(runtime, key_fingerprint(key) if key else ""))
    return 0


def _runtime(config: AgentConfig, args: argparse.Namespace, err: Console) -> AgentRuntime | int:
    """The agent's runtime, or the exit code after printing why it cannot be built (2: config)."""
    try:
        return AgentRuntime(config)
    except ConfigError as exc:
        where = f"{args.agent}: " if args.agent and not exc.path else ""
        err.print(f"error: {where}{exc}", markup=False)
        return 2
    except AtollError as exc:
        err.print(f"error: {exc}", markup=False)
        return 1


def _tls(config: AgentConfig, args: argparse.Namespace) -> dict[str, Any]:
    """uvicorn's TLS options: ``--tls-cert/--tls-key`` if given, else ``[server] tls_cert/tls_key``.
    None under the deployment server (``--fd``): its front door talks to agents over loopback."""
    if args.tls_cert is not None or args.tls_key is not None:
        return tls_options(args.tls_cert, args.tls_key, where="--tls-cert/--tls-key")
    server = config.server
    if args.fd is not None or (server.tls_cert is None and server.tls_key is None):
        return {}
    cert, key = (None if value is None else config.resolve_path(value) for value in (server.tls_cert, server.tls_key))
    return tls_options(cert, key, where=f"{config.source or 'agent file'} [server]")


def serve(args: argparse.Namespace) -> int:
    """Run the agent server with the arguments of ``atoll --server`` (see :mod:`atoll.commands.server`)."""
    setup_logging(args.log_level, args.log_format)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        config = load_agent_config(args.agent)
    except ConfigError as exc:
        where = f"{args.agent}: " if args.agent and not exc.path else ""
        err.print(f"error: {where}{exc}", markup=False)
        return 2
    if args.mcp_stdio:
        runtime = _runtime(config, args, err)
        return runtime if isinstance(runtime, int) else _serve_mcp_stdio(config, runtime, err)
    supervision = supervision_of(args)
    try:
        tls = _tls(config, args)
    except ConfigError as exc:
        err.print(f"error: {exc}", markup=False)
        return 2
    scheme = "https" if tls else "http"
    try:  # the port before the runtime: nothing (session store, clients) is opened for a port that is taken
        sock = inherited_socket(args.fd) if args.fd is not None else bind_tcp(args.host, args.port)
        if args.fd is not None:
            args.host, args.port = sock.getsockname()[:2]
    except OSError as exc:
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
        err.print(f"error: port {args.port} on {args.host} {reason}; choose another with --port", markup=False)
        return 1
    runtime = _runtime(config, args, err)
    if isinstance(runtime, int):
        sock.close()
        return runtime
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"atoll agent server '{config.agent.name}' starting on {scheme}://{args.host}:{args.port} ...",
              markup=False)
    out.file.flush()

    def started() -> None:
        out.print(startup_block(config, runtime, args.host, args.port, scheme), markup=False)
        out.file.flush()  # before /health turns 200: whoever waits on it may read the block next
        if warning := tools_warning(runtime):
            logger.warning(warning)

    runtime.on_started = started
    uvicorn_config = {
        "log_level": args.log_level, "log_config": None, "access_log": False, "lifespan": "on",
        # whole seconds (uvicorn's type), rounded up; never None, which would mean "wait forever"
        "timeout_graceful_shutdown": math.ceil(config.server.drain_timeout), **UVICORN_OPTIONS, **tls,
    }
    if config.server.trusted_proxies:  # uvicorn then takes the client from their X-Forwarded-For
        uvicorn_config.update(proxy_headers=True, forwarded_allow_ips=config.server.trusted_proxies)
    serving = AgentServing(create_app(runtime), uvicorn_config, sock, supervision,
                           drain_timeout=config.server.drain_timeout,
                           ready=lambda: runtime.state == "healthy")
    return serving.run()
