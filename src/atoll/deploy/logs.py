"""Per-agent log files: ``<logs>/<agent>/stdout.log`` and ``stderr.log``, written by the agent
process itself and rotated by the supervisor to ``.1`` ... ``.N`` when they pass ``max_bytes``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

STREAMS = ("stdout", "stderr")


def rotate(path: Path, *, max_bytes: int, backups: int) -> bool:
    """Copy-truncate ``path`` once it is past ``max_bytes``: the agent keeps writing to the same
    file (opened with ``O_APPEND``, so it continues at the new end). Older copies move up to
    ``.N``; with ``backups`` 0 the file is only truncated. True when it rotated.

    A few lines written between the copy and the truncation may be lost (as with logrotate's
    ``copytruncate``): the price of logs that outlive the supervisor that started the agent."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    if backups > 0:
        for index in range(backups - 1, 0, -1):
            older = path.with_name(f"{path.name}.{index}")
            if older.exists():
                os.replace(older, path.with_name(f"{path.name}.{index + 1}"))
        shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    with path.open("r+b") as handle:
        handle.truncate(0)
    return True


def log_paths(logs_dir: Path, agent: str) -> dict[str, Path]:
    return {stream: logs_dir / agent / f"{stream}.log" for stream in STREAMS}


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of ``path`` (reading from its end), continuing into ``path.1``."""
    if lines <= 0:
        return []
    found = _tail_one(path, lines)
    rotated = path.with_name(f"{path.name}.1")
    if len(found) < lines and rotated.exists():
        found = _tail_one(rotated, lines - len(found)) + found
    return found


def _tail_one(path: Path, lines: int) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            block = 8192
            data = b""
            while end > 0 and data.count(b"\n") <= lines:
                start = max(0, end - block)
                handle.seek(start)
                data = handle.read(end - start) + data
                end = start
    except FileNotFoundError:
        return []
    text = data.decode("utf-8", errors="replace").splitlines()
    return text[-lines:]
