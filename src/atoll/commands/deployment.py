"""``atoll`` (= ``atoll deployment``): run the deployment server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atoll.cli import Subparsers

#: Rows on the map under ``atoll`` (see :mod:`atoll.cli`).
VARIANTS = (("atoll --backend ray [options]", "the same, with the agents on Ray Serve (docs/scale-out.md)"),)


def register(modes: Subparsers) -> None:
    parser = modes.add_parser(
        "deployment", help="run the deployment server: every agent in a folder, one front door",
        description="Run the deployment server: discover atoll_agents/*/agent.toml|agent.json, run each "
                    "agent as its own process, restart them, manage them over a REST API, and serve one "
                    "front door (Ollama and OpenAI APIs) for all of them. Also spelled: atoll [options].",
        usage="atoll [options]")
    parser.add_argument("--agents-dir", help="folder of agent folders (default: agents_directory from "
                        "deployment_servers.json, else ./atoll_agents)")
    parser.add_argument("--config", type=Path, help="deployment config file "
                        "(default: $ATOLL_HOME/deployment_servers.json, ATOLL_HOME defaults to ~/.atoll)")
    parser.add_argument("--host", help="address of the management API (default 127.0.0.1)")
    parser.add_argument("--api-port", type=int, help="management API port (default 8080); a busy port "
                        "given here is an error")
    parser.add_argument("--base-port", type=int, help="first agent port (default 8100)")
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM; with --tls-key; "
                        "overrides tls_cert in the config file)")
    parser.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="what runs the agents: local processes (default), or Ray Serve (needs the 'ray' "
                        "extra: pip install 'atoll[ray]'); see docs/scale-out.md")
    parser.add_argument("--ray-address", metavar="auto|HOST:PORT", help="with --backend ray: the Ray cluster to "
                        "join (default: start a local single-node cluster on 127.0.0.1, stopped on exit)")
    parser.add_argument("--http-port", type=int, default=8000, help="with --backend ray: Ray Serve's HTTP port "
                        "on 127.0.0.1, serving the Ollama/OpenAI front door and /agent/<name>/ (default 8000)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="stderr log level; info includes one access line per request")
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atoll.deploy.cli import deploy

    return deploy(args)
