"""Per-agent virtual environments for agents that ship ``requirements.txt``, cached by its hash.

The venv sees the supervisor's own site-packages through a ``.pth`` file (so ``atoll`` itself is
importable) and gets the agent's requirements on top, installed with the supervisor's pip.
"""

from __future__ import annotations

import hashlib
import shutil
import site
import subprocess
import sys
import uuid
from pathlib import Path

from atoll.deploy.errors import BadRequest

READY_MARKER = ".atoll-ready"
INSTALL_TIMEOUT = 600.0


def requirements_hash(folder: Path) -> str | None:
    """Hash of the meaningful lines of ``requirements.txt``; None when there is nothing to install."""
    path = folder / "requirements.txt"
    if not path.is_file():
        return None
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return None
    tag = f"py{sys.version_info.major}.{sys.version_info.minor}\n"
    return hashlib.sha256((tag + "\n".join(lines)).encode()).hexdigest()[:24]


def venv_python(venv_root: Path, folder: Path) -> str | None:
    """The ready venv's interpreter for the agent in ``folder``, or None to use ours."""
    digest = requirements_hash(folder)
    if digest is None:
        return None
    venv = venv_root / digest
    if not (venv / READY_MARKER).exists():
        return None
    return str(venv / "bin" / "python")


def ensure_venv(venv_root: Path, folder: Path) -> Path | None:
    """Create (or reuse) the venv for ``folder``'s requirements. Blocking: run it in a thread."""
    digest = requirements_hash(folder)
    if digest is None:
        return None
    final = venv_root / digest
    if (final / READY_MARKER).exists():
        return final
    building = venv_root / f".build-{digest}-{uuid.uuid4().hex[:8]}"
    try:
        _run([sys.executable, "-m", "venv", "--without-pip", str(building)], "create the venv")
        _link_parent_packages(building)
        _run([sys.executable, "-m", "pip", "--python", str(building / "bin" / "python"), "install",
              "--disable-pip-version-check", "-r", str(folder / "requirements.txt")],
             "install requirements.txt")
        (building / READY_MARKER).write_text(digest)
        if final.exists():
            shutil.rmtree(final)
        building.rename(final)
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
    return final


def _link_parent_packages(venv: Path) -> None:
    site_dirs = list(venv.glob("lib/python*/site-packages"))
    parents = [*site.getsitepackages(), *[p for p in sys.path if p.endswith("site-packages")]]
    # An "import" line runs at startup; addsitedir also reads the parent's own .pth files (the
    # editable install of atoll lives in one), which a plain path line would not.
    text = "".join(f"import site; site.addsitedir({p!r})\n" for p in dict.fromkeys(parents))
    for site_dir in site_dirs:
        (site_dir / "_atoll_parent.pth").write_text(text)


def _run(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BadRequest(f"could not {what}: timed out", error_code="DEPENDENCY_INSTALL_FAILED") from exc
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise BadRequest(f"could not {what}: {tail}", error_code="DEPENDENCY_INSTALL_FAILED")
