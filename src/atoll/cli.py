"""The ``atoll`` command line: one grammar for every mode, and its top-level help is the map.

Modes today (``atoll --help`` prints this map)::

    atoll --server [options]        one agent as an HTTP server   (same as: atoll server [options])
    atoll --server --mcp-stdio      one agent as an MCP server on stdin/stdout
    atoll [options]                 the deployment server         (same as: atoll deployment [options])
    atoll --backend ray [options]   the deployment server, its agents on Ray Serve
    atoll status [options]          ask a running deployment server
    atoll export k8s [options]      write Kubernetes manifests for a folder of agents
    atoll restart-server [options]  re-execute the running deployment server, agents keep running
    atoll model-host [options]      one shared local model (the deployment server starts it)
    atoll --version                 atoll's version

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
  the agent server): add the argument in that mode's ``register`` and read it in its ``run``; if it
  makes a mode of its own for users, give it a row on the map in the module's ``VARIANTS``
  (``(spelling, summary)`` pairs, listed right under the mode);
* a mode with targets (``atoll export k8s``): its parser's own subcommands each get a row;
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


Row: TypeAlias = tuple[str, str]  # (how users spell it, one line of what it does)


def _rows(name: str, parser: argparse.ArgumentParser, summary: str) -> list[Row]:
    """The map's rows for one mode: its own, or one per target (``atoll export k8s``)."""
    targets = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if targets:
        return [(f"{spelling(name)} {t.dest} [options]", t.help or "") for t in targets[0]._choices_actions]
    return [(f"{spelling(name)} [options]", summary)]


def _map(modes: Subparsers, variants: dict[str, tuple[Row, ...]]) -> str:
    """The top-level help: every mode on one line as users spell it, each followed by its variants."""
    rows = [row for action in modes._choices_actions
            for row in [*_rows(action.dest, modes.choices[action.dest], action.help or ""),
                        *variants[action.dest]]]
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
    modes = parser.add_subparsers(dest="mode", help=argparse.SUPPRESS, prog="atoll")
    variants: dict[str, tuple[Row, ...]] = {}
    for module_name in MODES:
        module = importlib.import_module(f"atoll.commands.{module_name}")
        module.register(modes)
        variants[modes._choices_actions[-1].dest] = getattr(module, "VARIANTS", ())
    for name, mode in modes.choices.items():  # usage lines and errors spell the mode as users type it
        mode.prog = spelling(name)
    parser.epilog = _map(modes, variants)
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
