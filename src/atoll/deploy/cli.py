"""The deployment server's commands: ``atoll`` runs it, ``atoll status`` asks the running one.
Their arguments are declared in :mod:`atoll.commands.deployment` and :mod:`atoll.commands.status`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.deploy.admin_token import admin_token_path, read_admin_token
from atoll.deploy.config import (
    DeploymentConfig,
    config_path,
    load_deployment_config,
    resolve_agents_dir,
    state_path,
)
from atoll.deploy.errors import ManagementError
from atoll.deploy.footprint import keep_light
from atoll.deploy.status import STATUS_COLUMNS, degraded_lines, startup_block, status_rows
from atoll.errors import ConfigError
from atoll.httpkit.serving import tls_options
from atoll.logs import setup_logging

if TYPE_CHECKING:
    from atoll.deploy.service import DeploymentServer
    from atoll.ray.backend import RayBackend

logger = logging.getLogger(__name__)


def deploy(args: argparse.Namespace) -> int:
    """Run the deployment server with the arguments of ``atoll`` (see :mod:`atoll.commands.deployment`)."""
    if args.ray_address is not None and args.backend != "ray":
        print("error: --ray-address is an option of --backend ray", file=sys.stderr)
        return 2
    setup_logging(args.log_level, args.log_format)
    # httpx logs every request at info: the health probes alone would drown the access lines.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        config = load_deployment_config(args.config)
        overrides: dict[str, object] = {k: v for k, v in {"host": args.host, "api_port": args.api_port,
                                                          "base_port": args.base_port}.items() if v is not None}
        if args.tls_cert is not None or args.tls_key is not None:
            overrides.update(tls_cert=args.tls_cert, tls_key=args.tls_key)
        if args.api_port is not None:  # a port the user named is that port or an error, never another
            overrides["auto_discover_port"] = False
        config = config.model_copy(update=overrides)
        tls_options(config.tls_cert, config.tls_key, where=str(args.config or config_path()))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not config.enabled:
        print("The deployment server is disabled (enabled: false in deployment_servers.json).")
        return 0
    keep_light()
    agents_dir = resolve_agents_dir(args.agents_dir, config, Path.cwd())
    if not agents_dir.exists():
        agents_dir.mkdir(parents=True)
        print(f"note: created the agents directory {agents_dir}; put one folder per agent in it "
              "(each with agent.toml or agent.json).")
    if args.backend == "ray":
        return _serve_ray(args, config, agents_dir)
    try:
        server = asyncio.run(_serve(config, agents_dir))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ManagementError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if server.restarting and server.front_door is not None:
        from atoll.deploy.restart import reexec

        reexec(server.front_door, server.listeners)
    return 0


def _serve_ray(args: argparse.Namespace, config: DeploymentConfig, agents_dir: Path) -> int:
    """``--backend ray`` (see :mod:`atoll.ray.server`)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:  # the server imports ray only once a cluster is up
        print("error: --backend ray needs Ray Serve: pip install 'atoll[ray]'", file=sys.stderr)
        return 2
    from atoll.ray.server import RayOptions, run

    async def report(url: str, backend: RayBackend, token_file: Path | None) -> None:
        agents = await backend.statuses()
        lines = startup_block(config.display_host, agents, backend.problems(), [], url, str(agents_dir))
        lines[0] = "[OK] ATOLL deployment server started (backend: Ray Serve)"
        where = f"in {token_file} (atoll status reads it)" if token_file \
            else "configured (admin_token / ATOLL_ADMIN_TOKEN)"
        lines += [f"  Admin token: {where}; the management API needs 'Authorization: Bearer <token>'",
                  f"  Dashboard: {url}/ui (sign in with the admin token)",
                  f"  Ray Serve (Ollama/OpenAI front door, /agent/<name>/): http://127.0.0.1:{args.http_port}",
                  f"  Ray cluster: {args.ray_address or 'local single-node head on 127.0.0.1 (stopped on exit)'}"]
        print("\n".join(lines), flush=True)

    try:
        asyncio.run(run(config, agents_dir, RayOptions(args.ray_address, args.http_port), on_ready=report))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ManagementError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ConnectionError as exc:  # ray.init: no cluster (or a refused token) at --ray-address
        print(f"error: cannot join the Ray cluster at {args.ray_address}: {exc}", file=sys.stderr)
        return 1
    print("ATOLL deployment server stopped; its Ray Serve applications deleted.", flush=True)
    return 0


async def _serve(config: DeploymentConfig, agents_dir: Path) -> DeploymentServer:
    from atoll.deploy.handover import inherited
    from atoll.deploy.service import DeploymentServer, bind_api_socket

    front, agent_sockets = inherited()
    sock = front or bind_api_socket(config)
    port = sock.getsockname()[1]
    if port != config.api_port and front is None:
        print(f"note: port {config.api_port} is in use; the management API and front door use port {port} "
              "(auto_discover_port)", flush=True)
    server = DeploymentServer.build(config, agents_dir, inherited=agent_sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, server.request_restart, stop)

    async def report(url: str) -> None:
        await _print_block(server, url)

    await server.run(stop, on_ready=report, sock=sock)
    if server.restarting:
        print("ATOLL deployment server restarting; agents keep running.", flush=True)
    else:
        print("ATOLL deployment server stopped; all agents stopped.", flush=True)
    return server


async def _print_block(server: DeploymentServer, url: str) -> None:
    from atoll.deploy.remote import check_all

    sup = server.supervisor
    remotes = await check_all(server.probes, server.config.remote_servers)
    problems = [{"folder": str(p.folder), "name": p.name, "reason": p.reason} for p in sup.problems]
    lines = startup_block(server.config.display_host, sup.statuses(), problems, remotes, url,
                          str(server.agents_dir))
    where = f"in {server.token_file} (atoll status reads it)" if server.token_file \
        else "configured (admin_token / ATOLL_ADMIN_TOKEN)"
    at = lines.index(f"  Agents directory: {server.agents_dir}") + 1
    lines[at:at] = [f"  Admin token: {where}; the management API needs 'Authorization: Bearer <token>'",
                    f"  Dashboard: {url}/ui (sign in with the admin token)"]
    print("\n".join(lines), flush=True)


def _server_url(explicit: str | None, config: DeploymentConfig) -> str:
    if explicit:
        return explicit.rstrip("/")
    try:
        return str(json.loads(state_path().read_text())["url"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return f"http://{config.bind_host}:{config.api_port}"


def _verify(config: DeploymentConfig) -> ssl.SSLContext | bool:
    """The system's CAs, plus the server's own ``tls_cert`` (so a self-signed one is trusted here)."""
    if config.tls_cert is None:
        return True
    context = ssl.create_default_context()
    with contextlib.suppress(OSError, ssl.SSLError):  # not readable here: the system's CAs decide
        context.load_verify_locations(config.tls_cert)
    return context


def status(args: argparse.Namespace) -> int:
    """``atoll status`` (see :mod:`atoll.commands.status`)."""
    try:
        config = load_deployment_config()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    url = _server_url(args.url, config)
    import httpx

    token = config.admin_token or read_admin_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(f"{url}/agents", headers=headers, timeout=5.0, trust_env=False,
                             verify=_verify(config))
        if response.status_code == 401:
            print(f"error: the deployment server at {url} wants its admin token "
                  f"({response.json().get('detail')}); it is read from ATOLL_ADMIN_TOKEN, admin_token in "
                  f"deployment_servers.json or {admin_token_path()}", file=sys.stderr)
            return 1
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        print(f"error: no deployment server answering at {url} ({exc})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    _print_table(url, body)
    return 0


def _print_table(url: str, body: dict[str, Any]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    # No vertical rules, two spaces between columns, short headers: the columns fit a terminal's
    # 80 columns with agent names of about 15 characters (longer names fold inside their cell).
    table = Table(title=f"ATOLL deployment server {url}", box=box.SIMPLE_HEAD, title_justify="left",
                  show_edge=False, pad_edge=False, collapse_padding=True)
    for column in STATUS_COLUMNS:
        table.add_column(column, no_wrap=column != "agent", overflow="fold")
    agents = body.get("agents", []) + body.get("model_hosts", [])
    for row in status_rows(agents):
        table.add_row(*row)
    console = Console()
    console.print(table)
    for line in degraded_lines(agents):
        console.print(line, markup=False, highlight=False)
    for problem in body.get("problems", []):
        console.print(f"✗ {problem.get('name') or problem.get('folder')}: {problem.get('reason')}",
                      markup=False, highlight=False)
