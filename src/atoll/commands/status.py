"""``atoll status``: ask a running deployment server about its agents."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atoll.cli import Subparsers


def register(modes: Subparsers) -> None:
    parser = modes.add_parser("status", help="show the agents of a running deployment server",
                              description="Status of the running deployment server's agents.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--url", help="deployment server URL (default: the running one)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atoll.deploy.cli import status

    return status(args)
