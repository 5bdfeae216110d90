"""No unknown ``.pth`` file in the environment: Python runs ``import`` lines in them at every
interpreter start, which is how LiteLLM 1.82.7/1.82.8's credential stealer ran (BerriAI/litellm#24518)."""

from __future__ import annotations

import re
import site
import sys
from pathlib import Path

#: The ``.pth`` files an atoll environment may hold (editable installs of atoll, setuptools' shim).
KNOWN = (re.compile(r"__editable__\.atoll-[\w.]+\.pth"), re.compile(r"distutils-precedence\.pth"),
         re.compile(r"__editable___atoll_[\w.]+_finder\.pth"))


def test_no_unknown_pth_files_in_the_environment() -> None:
    folders = {Path(p) for p in site.getsitepackages() if p.startswith(sys.prefix)}
    found = [path for folder in folders for path in folder.glob("*.pth")]
    assert found, "no site-packages with .pth files found: is this the project's virtualenv?"
    unknown = [str(p) for p in found if not any(pattern.fullmatch(p.name) for pattern in KNOWN)]
    assert unknown == [], f"unknown .pth files run code at every Python start: {unknown}"
