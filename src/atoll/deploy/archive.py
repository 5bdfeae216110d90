"""Safe extraction of agent packages. Rejected, before anything is written: entries that climb out
(``../``), absolute paths (``/x``, ``C:\\x``), symlinks, and archives whose uncompressed size, file
count or compression ratio is absurd (zip bombs). Extraction also counts the bytes it really writes,
so a lying size header cannot get past the limit."""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from atoll.deploy.errors import BadRequest

UNSAFE = "UNSAFE_PACKAGE"
MALFORMED = "INVALID_PACKAGE"
TOO_LARGE = "PACKAGE_TOO_LARGE"


@dataclass(frozen=True)
class ArchiveLimits:
    max_package_bytes: int = 50 * 1024 * 1024
    max_files: int = 2000
    max_total_bytes: int = 200 * 1024 * 1024
    #: Uncompressed / compressed; real packages stay far below, bombs go far above.
    max_ratio: float = 100.0
    #: The ratio is only judged past this many uncompressed bytes.
    ratio_floor: int = 1024 * 1024


def check_members(archive: zipfile.ZipFile, limits: ArchiveLimits) -> list[zipfile.ZipInfo]:
    members = archive.infolist()
    if len(members) > limits.max_files:
        raise BadRequest(f"archive holds {len(members)} entries (limit {limits.max_files})",
                         error_code=TOO_LARGE)
    total = sum(m.file_size for m in members)
    packed = sum(m.compress_size for m in members)
    if total > limits.max_total_bytes:
        raise BadRequest(f"archive expands to {total} bytes (limit {limits.max_total_bytes})",
                         error_code=TOO_LARGE)
    if total > limits.ratio_floor and total / max(packed, 1) > limits.max_ratio:
        raise BadRequest(f"archive compression ratio {total / max(packed, 1):.0f}:1 looks like a zip bomb",
                         error_code=TOO_LARGE)
    for member in members:
        _check_name(member)
    return members


def _check_name(member: zipfile.ZipInfo) -> None:
    name = member.filename
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise BadRequest(f"archive entry has an absolute path: {name!r}", error_code=UNSAFE)
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        raise BadRequest(f"archive entry climbs out of the folder: {name!r}", error_code=UNSAFE)
    if not parts or name.replace("\\", "/").rstrip("/").split("/")[-1] in (".", ""):
        raise BadRequest(f"archive entry has no file name: {name!r}", error_code=MALFORMED)
    if stat.S_ISLNK(member.external_attr >> 16):
        raise BadRequest(f"archive entry is a symlink: {name!r}", error_code=UNSAFE)


def extract(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], dest: Path,
            limits: ArchiveLimits) -> None:
    root = dest.resolve()
    budget = limits.max_total_bytes
    try:
        for member in members:
            budget -= _extract_one(archive, member, root, min(budget, member.file_size))
    except (OSError, zipfile.BadZipFile, NotImplementedError, EOFError, ValueError) as exc:
        # a file that is also a folder, a corrupt entry, an unknown compression method...
        detail = f"{type(exc).__name__}: {exc}".replace(str(root), "<package>")
        raise BadRequest(f"archive cannot be unpacked: {detail}", error_code=MALFORMED) from exc


def _extract_one(archive: zipfile.ZipFile, member: zipfile.ZipInfo, root: Path, cap: int) -> int:
    """Write one entry under ``root``; the bytes written."""
    target = (root / member.filename.replace("\\", "/")).resolve()
    if not target.is_relative_to(root) or target == root:
        raise BadRequest(f"archive entry escapes the folder: {member.filename!r}", error_code=UNSAFE)
    if member.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    return _copy_capped(archive, member, target, cap)


def _copy_capped(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, cap: int) -> int:
    written = 0
    with archive.open(member) as source, target.open("wb") as sink:
        while chunk := source.read(65536):
            written += len(chunk)
            if written > cap:
                raise BadRequest(f"archive entry {member.filename!r} expands past its declared size",
                                 error_code=TOO_LARGE)
            sink.write(chunk)
    return written


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
