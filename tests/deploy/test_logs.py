"""Per-agent log files: copy-truncate rotation while the writer keeps its descriptor, and reading
the tail across a rotation."""

from __future__ import annotations

import os
from pathlib import Path

from atoll.deploy.logs import log_paths, rotate, tail


def test_rotation_keeps_at_most_backups_files_while_the_writer_keeps_writing(tmp_path: Path) -> None:
    path = log_paths(tmp_path, "agent")["stderr"]
    path.parent.mkdir(parents=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)  # as the agent process holds it
    try:
        for index in range(12):
            os.write(fd, f"line {index:02d} {'x' * 30}\n".encode())  # 40 bytes
            rotate(path, max_bytes=70, backups=2)  # two lines per file
    finally:
        os.close(fd)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["stderr.log", "stderr.log.1", "stderr.log.2"]
    assert path.read_text() == ""  # just rotated: the next write starts at 0, not at a hole
    assert path.with_name("stderr.log.1").read_text().splitlines()[0].startswith("line 10")
    assert path.with_name("stderr.log.2").read_text().splitlines()[0].startswith("line 08")
    assert [line[:7] for line in tail(path, 3)] == ["line 10", "line 11"]  # continues into .1


def test_small_files_stay_and_zero_backups_only_truncates(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_bytes(b"a" * 40 + b"\n")
    assert rotate(path, max_bytes=50, backups=1) is False
    assert rotate(tmp_path / "missing.log", max_bytes=1, backups=1) is False
    path.write_bytes(b"b" * 60 + b"\n")
    assert rotate(path, max_bytes=50, backups=0) is True
    assert path.read_bytes() == b"" and not path.with_name("out.log.1").exists()
