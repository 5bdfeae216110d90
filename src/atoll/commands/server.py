"""``atoll --server`` (= ``atoll server``): run one agent as an HTTP server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atoll.cli import Subparsers

LOG_LEVELS = ["debug", "info", "warning", "error"]
#: Rows on the map under ``atoll --server`` (see :mod:`atoll.cli`).
VARIANTS = (("atoll --server --mcp-stdio", "serve one agent as an MCP server on stdin/stdout (desktop apps)"),)


def register(modes: Subparsers) -> None:
    parser = modes.add_parser(
        "server", help="run one agent as an HTTP server (Ollama and OpenAI APIs)",
        description="Serve one agent over the Ollama API (and OpenAI's under /v1). "
                    "Also spelled: atoll --server [options].",
        usage="atoll --server [options]")
    parser.add_argument("--port", type=int, default=8100, help="port to listen on (default 8100)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; 0.0.0.0 exposes the agent to the network)")
    parser.add_argument("--agent", type=Path, help="agent.toml or agent.json (default: the built-in agent)")
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="log lines on stderr: readable text (default) or one JSON object per line")
    parser.add_argument("--mcp-stdio", action="store_true",
                        help="serve the agent as an MCP server on stdin/stdout instead of HTTP (for desktop "
                             "clients that launch it: Claude Desktop, VS Code, Cursor); binds no port, logs to "
                             "stderr, keeps its state under $ATOLL_HOME")
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM; with --tls-key; "
                        "overrides [server] tls_cert)")
    parser.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    supervised = parser.add_argument_group(
        "set by the deployment server (see docs/deployment.md; not needed by hand)")
    supervised.add_argument("--fd", type=int, help="serve on this inherited listening socket, not --port")
    supervised.add_argument("--public-fd", type=int, help="the agent's stable-port socket (inherited; "
                            "served once the agent is healthy)")
    supervised.add_argument("--lease", type=Path, help="shut down when this file goes untouched for "
                            "--orphan-grace seconds (the deployment server died and nobody adopted us)")
    supervised.add_argument("--orphan-grace", type=float, default=60.0, help="seconds (default 60)")
    supervised.add_argument("--exit-file", type=Path, help="write the exit status here (JSON)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atoll.server.serve import serve

    return serve(args)
