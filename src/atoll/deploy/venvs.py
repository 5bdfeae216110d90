"""Per-agent virtual environments for agents that ship ``requirements.txt``, cached by its hash.

The venv sees the supervisor's own site-packages through a ``.pth`` file (so ``atoll`` itself is
importable) and gets the agent's requirements on top, installed with the supervisor's pip.

Installing requirements runs code (a source distribution's build scripts) as the deployment
server's user: deploying is gated by the admin token for that reason. pip options in the file
(another index, ``--find-links``, includes, editable installs, direct URLs and paths) are refused
unless the deployment server's own config sets ``allow_pip_options``. One build per requirements
hash at a time: a file lock makes a second deploy needing the same venv wait and reuse it.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import re
import shutil
import site
import subprocess
import sys
import uuid
from pathlib import Path

from atoll.deploy.errors import BadRequest

log = logging.getLogger("atoll.deploy")

READY_MARKER = ".atoll-ready"
INSTALL_TIMEOUT = 600.0
#: What a requirement line may hold without ``allow_pip_options``: a name with extras, version
#: specifiers and an environment marker, optionally followed by ``--hash`` pins.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,\s-]*\])?")
_HASH = re.compile(r"--hash[=\s]\S+")
_ARCHIVES = (".whl", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz")


def check_requirements(folder: Path, allow_pip_options: bool) -> None:
    """Refuse (400, naming the line) pip options, includes, direct URLs and paths in ``requirements.txt``.

    pip reads options from the file itself (``--index-url``, ``--find-links``, ``-e``, ``-r``...), so an
    uploaded package could pick where code comes from; only ``allow_pip_options: true`` in
    ``deployment_servers.json`` lets such lines through.
    """
    path = folder / "requirements.txt"
    if allow_pip_options or not path.is_file():
        return
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not text:
            continue
        problem = _requirement_problem(text)
        if problem:
            raise BadRequest(
                f"requirements.txt line {number}: {text[:200]!r} {problem}; only plain requirements "
                "(name, extras, versions, markers, --hash) are installed unless allow_pip_options is "
                "true in deployment_servers.json", error_code="PIP_OPTIONS_REFUSED")


def _requirement_problem(text: str) -> str | None:
    if text.endswith("\\"):
        return "continues on the next line (not allowed)"
    if text.startswith("-"):
        return "is a pip option"
    match = _NAME.match(text)
    if match is None:
        return "is not a package name (a path or URL)"
    if match.group().lower().endswith(_ARCHIVES):
        return "is a file, not a package name"
    requirement, _, options = text[match.end():].partition(" --")
    if "@" in requirement.split(";", 1)[0] or "://" in requirement:
        return "is a direct URL reference"
    if not re.fullmatch(r"[\s\w.*,<>=!~'\"();:-]*", requirement):
        return "is not a plain requirement"
    if options and not all(_HASH.fullmatch(o) for o in re.split(r"\s+(?=--)", f"--{options}")):
        return "carries a pip option other than --hash"
    return None


def requirement_lines(folder: Path) -> list[str]:
    """The meaningful lines of ``folder``'s ``requirements.txt`` (comments and blank lines dropped);
    none without the file."""
    path = folder / "requirements.txt"
    if not path.is_file():
        return []
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def requirements_hash(folder: Path) -> str | None:
    """Hash of the meaningful lines of ``requirements.txt``; None when there is nothing to install."""
    lines = requirement_lines(folder)
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


def ensure_venv(venv_root: Path, folder: Path, *, allow_pip_options: bool = False) -> Path | None:
    """Create (or reuse) the venv for ``folder``'s requirements. Blocking: run it in a thread."""
    check_requirements(folder, allow_pip_options)
    digest = requirements_hash(folder)
    if digest is None:
        return None
    final = venv_root / digest
    if (final / READY_MARKER).exists():
        return final
    venv_root.mkdir(parents=True, exist_ok=True)
    with open(venv_root / f".{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent build of the same venv finishes first
        if (final / READY_MARKER).exists():
            log.info("venv %s: built meanwhile by another deploy, reused", digest)
            return final
        log.info("venv %s: building", digest)
        _build(final, folder, digest)
    return final


def _build(final: Path, folder: Path, digest: str) -> None:
    building = final.parent / f".build-{digest}-{uuid.uuid4().hex[:8]}"
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
