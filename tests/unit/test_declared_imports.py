"""Every third-party module imported anywhere under ``src/`` comes from a distribution that
``pyproject.toml`` declares as a runtime dependency (or, for the ``local`` provider, in its extra).

An undeclared import works on a developer's machine only because something else pulled the package in
(``httpx2`` came with ``mcp``); a fresh install, or the next release of that other package, breaks it.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"]) + list(project["optional-dependencies"].get("local", []))
    return {_canonical(Requirement(line).name) for line in requirements}


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _top_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_import_in_src_is_a_declared_dependency() -> None:
    declared = _declared()
    distributions = packages_distributions()
    undeclared: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for module in _top_level_imports(path):
            if module == "atoll" or module in sys.stdlib_module_names or module == "__future__":
                continue
            owners = {_canonical(d) for d in distributions.get(module, [])}
            if not owners:
                undeclared.setdefault(f"{module} (not installed)", []).append(str(path.relative_to(ROOT)))
            elif not owners & declared:
                undeclared.setdefault(f"{module} (from {', '.join(sorted(owners))})", []).append(
                    str(path.relative_to(ROOT)))
    assert not undeclared, f"imports not declared in pyproject.toml: {undeclared}"
