"""The hashed lock files that ``make`` installs from agree with pyproject.toml.

``scripts/lock.sh`` (``make lock``) rewrites them; this test fails while someone has changed a
dependency in pyproject.toml without doing so, so a new machine never installs something other than
what pyproject.toml asks for.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _pins(lock: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        found = PIN.match(line)
        if found:
            pins[canonicalize_name(found[1])] = found[2]
    return pins


def _requirements(*extras: str) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in extras or project["optional-dependencies"]:
        wanted += project["optional-dependencies"][extra]
    return [Requirement(text) for text in wanted]


@pytest.mark.parametrize(("lock", "extras"), [("runtime.lock", ("local",)), ("test.lock", ())])
def test_every_dependency_is_pinned_within_its_range(lock: str, extras: tuple[str, ...]) -> None:
    path = REPO / "requirements" / lock
    pins = _pins(path)
    problems = []
    for requirement in _requirements(*extras):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement.name} is not in {lock}")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement.name}=={pinned} in {lock} is outside {requirement.specifier}")
    assert not problems, "run `make lock`: " + "; ".join(problems)


def test_every_pin_carries_hashes() -> None:
    for lock in ("runtime.lock", "test.lock"):
        text = (REPO / "requirements" / lock).read_text()
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.strip())
        unhashed = [entry.split()[0] for entry in entries if "==" in entry and "--hash=sha256:" not in entry]
        assert not unhashed, f"{lock}: pins without hashes: {unhashed}"


def test_the_runtime_set_is_the_test_set_at_the_same_versions() -> None:
    runtime, test = _pins(REPO / "requirements/runtime.lock"), _pins(REPO / "requirements/test.lock")
    differ = {name: (version, test.get(name)) for name, version in runtime.items() if test.get(name) != version}
    assert not differ, f"run `make lock`: runtime vs test pins differ: {differ}"
