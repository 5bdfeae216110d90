"""Per-agent log files: size rotation and reading the tail across a rotation."""

from __future__ import annotations

from pathlib import Path

from atoll.deploy.logs import RotatingLog, log_paths, tail


def test_rotation_keeps_at_most_backups_files_and_tail_reads_across_them(tmp_path: Path) -> None:
    path = log_paths(tmp_path, "agent")["stderr"]
    log = RotatingLog(path, max_bytes=100, backups=2)
    for index in range(12):
        log.write(f"line {index:02d} {'x' * 30}\n".encode())  # 40 bytes: two lines per file
    log.close()

    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["stderr.log", "stderr.log.1", "stderr.log.2"]
    assert all(p.stat().st_size <= 100 for p in path.parent.iterdir())
    assert path.read_text().splitlines()[0].startswith("line 10")
    assert path.with_name("stderr.log.1").read_text().splitlines()[0].startswith("line 08")
    assert path.with_name("stderr.log.2").read_text().splitlines()[0].startswith("line 06")
    assert [line[:7] for line in tail(path, 3)] == ["line 09", "line 10", "line 11"]


def test_a_reopened_log_continues_its_size_and_zero_backups_truncates(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    first = RotatingLog(path, max_bytes=50, backups=1)
    first.write(b"a" * 40 + b"\n")
    first.close()
    again = RotatingLog(path, max_bytes=50, backups=1)
    again.write(b"b" * 20 + b"\n")  # 41 + 21 > 50: the file from before is rotated away
    again.close()
    assert path.read_bytes() == b"b" * 20 + b"\n"
    assert path.with_name("out.log.1").read_bytes() == b"a" * 40 + b"\n"

    bare = RotatingLog(tmp_path / "bare.log", max_bytes=10, backups=0)
    bare.write(b"123456789\n")
    bare.write(b"abc\n")
    bare.close()
    assert (tmp_path / "bare.log").read_bytes() == b"abc\n"
    assert not (tmp_path / "bare.log.1").exists()


def test_a_single_write_larger_than_the_limit_is_kept_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    log = RotatingLog(path, max_bytes=10, backups=1)
    log.write(b"0123456789abcdef\n")
    log.close()
    assert path.read_bytes() == b"0123456789abcdef\n" and not path.with_name("big.log.1").exists()
