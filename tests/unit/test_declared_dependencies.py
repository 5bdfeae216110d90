"""Every module ``src/atoll`` imports is the standard library, atoll itself, or a distribution
declared in ``pyproject.toml`` (runtime imports in ``dependencies``; an optional extra only for the
modules that import it lazily: ``local`` for the embedded-model modules, ``ray`` for ``atoll.ray``)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "atoll"


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _imports() -> dict[str, set[str]]:
    """Top-level module -> the files importing it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                found.setdefault(module.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def test_every_import_is_declared() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = _names(project["dependencies"])
    extras = project["optional-dependencies"]
    # extra -> the only files allowed to import it
    optional = {
        "local": (_names(extras["local"]), lambda f: "llamacpp" in f or "local" in f),
        "ray": (_names(extras["ray"]), lambda f: f.startswith("src/atoll/ray/")),
    }
    distributions = packages_distributions()
    problems = []
    for module, files in sorted(_imports().items()):
        if module in sys.stdlib_module_names or module in ("atoll", "__future__"):
            continue
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
        if not names:
            problems.append(f"{module} (imported by {sorted(files)}) is not installed")
        elif not names & runtime and not any(
            names & declared and all(allowed(f) for f in files) for declared, allowed in optional.values()
        ):
            problems.append(f"{module} ({sorted(names)}, imported by {sorted(files)}) is not a declared dependency")
    assert problems == []
