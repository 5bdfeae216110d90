"""``atoll restart-server``: re-execute the running deployment server; its agents keep running."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atoll.cli import Subparsers


def register(modes: Subparsers) -> None:
    parser = modes.add_parser(
        "restart-server", help="restart the running deployment server without touching its agents",
        description="Re-execute the running deployment server (a new atoll version, a changed "
                    "deployment_servers.json) without restarting its agents: the front door drains, the "
                    "sockets are inherited, the agents are adopted, no request is dropped. Same as "
                    "sending it SIGHUP. Prints each agent's atoll version afterwards.",
        usage="atoll restart-server [options]")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for the restarted server (default 120)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atoll.deploy.restart import restart_server

    return restart_server(args)
