"""Command line: ``atoll --server`` runs one agent; ``atoll`` runs the deployment server;
``atoll status`` asks a running deployment server. This module only wires pieces together."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--server" in args:
        from atoll.server.serve import serve_main

        return serve_main([a for a in args if a != "--server"])
    if args and args[0] == "status":
        from atoll.deploy.cli import status_main

        return status_main(args[1:])
    from atoll.deploy.cli import deploy_main

    return deploy_main(args)
