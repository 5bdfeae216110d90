"""The ``atoll`` command line: one grammar for every mode, and its top-level help is the map.

Modes today::

    atoll --server [options]     one agent as an HTTP server   (same as: atoll server [options])
    atoll [options]              the deployment server         (same as: atoll deployment [options])
    atoll status [options]       ask a running deployment server
    atoll restart-server         re-execute the running deployment server, agents keep running
    atoll --version              atoll's version

Every mode is an argparse subcommand declared in a module of its own under :mod:`atoll.commands`.
That module keeps its imports light (the deployment server's memory is budgeted, and ``--help``
should be instant) and defines one function::

    def register(modes: Subparsers) -> None:
        parser = modes.add_parser("name", help="one line for the map", description="...")
        parser.add_argument(...)
        parser.set_defaults(run=run)    # run(args: argparse.Namespace) -> int, imports lazily

How to add a mode:

* a new subcommand (``atoll export k8s``, ``atoll restart-server``): write
  ``atoll/commands/<name>.py`` with ``register`` as above and add its module name to
  :data:`MODES` (the order there is the order of the map);
* an option of an existing mode (``--backend ray`` for the deployment server, ``--mcp-stdio`` for
  the agent server): add the argument in that mode's ``register`` and read it in its ``run``;
* a flag spelling of a subcommand (as ``--server`` is for ``server``): add it to :data:`FLAG_MODES`.

Exit codes: 0 success, 1 runtime failure (port busy, server unreachable), 2 bad usage or bad
configuration (the deployment server does not restart an agent that exits with 2).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TypeAlias

from atoll._version import __version__

#: Modules under ``atoll.commands``, each with ``register(modes)``; the map lists them in this order.
MODES = ("server", "deployment", "status", "export", "restart_server", "model_host")
#: Flags that select a mode wherever they appear (the seed's ``atoll --server ...``).
FLAG_MODES = {"--server": "server"}
#: The mode of a bare ``atoll`` or ``atoll --some-option ...``.
DEFAULT_MODE = "deployment"

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # what add_subparsers() returns

def spelling(mode: str) -> str:
    """How users type ``mode``: ``atoll --server``, plain ``atoll`` for the default, else ``atoll <mode>``."""
    flags = [flag for flag, target in FLAG_MODES.items() if target == mode]
    if flags:
        return f"atoll {flags[0]}"
    return "atoll" if mode == DEFAULT_MODE else f"atoll {mode}"


def _map(modes: Subparsers) -> str:
    """The top-level help: every mode on one line, as users spell it."""
    rows = [(f"{spelling(a.dest)} [options]", a.help or "") for a in modes._choices_actions]
    width = max(len(left) for left, _ in rows) + 2
    lines = ["modes (each has its own help: atoll --server --help, atoll status --help, ...):"]
    lines += [f"  {left:<{width}}{summary}" for left, summary in rows]
    aliases = [f"atoll {mode} = {spelling(mode)}" for mode in MODES if spelling(mode) != f"atoll {mode}"]
    lines += ["", "  also spelled: " + "; ".join(aliases),
              "", "exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad configuration"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atoll", usage="atoll [-h] [--version] <mode> [options]",
        description="Serve tool-using LLM agents over the Ollama and OpenAI APIs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"atoll {__version__}")
    modes = parser.add_subparsers(dest="mode", help=argparse.SUPPRESS)
    for name in MODES:
        importlib.import_module(f"atoll.commands.{name}").register(modes)
    parser.epilog = _map(modes)
    return parser


def normalise(argv: list[str]) -> list[str]:
    """Spell every invocation as ``<mode> [options]``: flag spellings (``--server``) anywhere before a
    ``--`` become the mode word, and ``atoll [options]`` is the default mode. ``atoll --help`` and
    ``atoll --version`` stay top-level (``--version`` wins anywhere)."""
    head = argv[:argv.index("--")] if "--" in argv else argv
    if "--version" in head:
        return ["--version"]
    for flag, mode in FLAG_MODES.items():
        if flag in head:
            rest = list(argv)
            rest.remove(flag)
            return [mode, *rest]
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        return [DEFAULT_MODE, *argv]
    return list(argv)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(normalise(list(sys.argv[1:] if argv is None else argv)))
    run = getattr(args, "run", None)
    if run is None:  # a mode without run() is a programming error, not a user's
        raise SystemExit(f"atoll: mode {args.mode!r} has no run function")
    result: int = run(args)
    return result
