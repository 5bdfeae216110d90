"""Per-agent log files with size rotation: ``<logs>/<agent>/stdout.log`` and ``stderr.log``,
rotated to ``.1`` ... ``.N`` when they pass ``max_bytes``."""

from __future__ import annotations

import os
from pathlib import Path

STREAMS = ("stdout", "stderr")


class RotatingLog:
    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")
        self._size = self._file.tell()

    def write(self, data: bytes) -> None:
        if self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
        self._file.write(data)
        self._file.flush()
        self._size += len(data)

    def _rotate(self) -> None:
        self._file.close()
        if self.backups > 0:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("wb")
        self._size = 0

    def close(self) -> None:
        self._file.close()


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
