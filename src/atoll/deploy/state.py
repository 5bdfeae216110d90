"""What the deployment server remembers in ``$ATOLL_HOME`` so a successor can adopt its agents:
``deployment_server.state.json`` (server pid and URL, and one record per agent process), written
atomically (temporary file, fsync, rename), and the lease file agents watch (``run/lease``).

An agent record names its process by pid *and* start time (a pid alone may be reused), the stable
port, the port the supervisor probes, the checksum of the agent's files and the atoll version that
started it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

#: Files that change while an agent runs and say nothing about its version.
_SKIPPED_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal", ".log", ".pyc")
_MAX_FILES = 2000


@dataclass(frozen=True)
class AgentRecord:
    name: str
    pid: int
    create_time: float
    port: int
    probe_port: int
    checksum: str
    folder: str
    atoll_version: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentRecord:
        return cls(name=str(data["name"]), pid=int(data["pid"]), create_time=float(data["create_time"]),
                   port=int(data["port"]), probe_port=int(data["probe_port"]),
                   checksum=str(data.get("checksum", "")), folder=str(data.get("folder", "")),
                   atoll_version=str(data.get("atoll_version", "")))


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with scratch.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(scratch, path)


def read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_records(path: Path, kind: str = "agents") -> dict[str, AgentRecord]:
    """The records of ``kind``: ``agents``, or ``model_hosts`` (``atoll.deploy.model_hosts``)."""
    records: dict[str, AgentRecord] = {}
    for raw in read_state(path).get(kind, []):
        with contextlib.suppress(KeyError, ValueError, TypeError):
            record = AgentRecord.from_dict(raw)
            records[record.name] = record
    return records


def other_live_server(state: dict[str, Any], running_here: set[str]) -> int | None:
    """The pid of another deployment server still running on this ``$ATOLL_HOME``, if any (pid
    *and* start time, so a reused pid is not mistaken for it). ``running_here``: the instance ids
    of the servers running in this very process (a re-executed server finds none of its own)."""
    pid = state.get("pid")
    if not isinstance(pid, int):
        return None
    if pid == os.getpid():
        return pid if state.get("instance") in running_here else None
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - float(state.get("create_time", 0))) > 0.05:
            return None
    except (psutil.Error, TypeError, ValueError):
        return None
    return pid


class StateFile:
    """The server's entry plus agent records; rewritten only when something changed. A server
    that shares its ``$ATOLL_HOME`` with another running one keeps none (``enabled`` false)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server: dict[str, Any] = {}
        self.enabled = True
        self._written = ""

    def save(self, records: list[AgentRecord], hosts: list[AgentRecord] | None = None) -> None:
        if not self.enabled:
            return
        text = json.dumps({**self.server, "agents": [asdict(r) for r in records],
                           "model_hosts": [asdict(r) for r in hosts or []]}, indent=1)
        if text != self._written:
            write_atomically(self.path, text)
            self._written = text

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            if read_state(self.path).get("pid") == os.getpid():
                self.path.unlink()


class Lease:
    """The file agents watch: touched every ``interval`` seconds while this supervisor lives."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def renew(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        now = time.time()
        try:
            os.utime(self.path, (now, now))
        except FileNotFoundError:
            self.path.touch()


def folder_checksum(folder: Path) -> str:
    """sha256 over the agent folder's files (names and contents), runtime files left out."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not _skipped(p.relative_to(folder)))
    for path in files[:_MAX_FILES]:
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _skipped(relative: Path) -> bool:
    return (any(part.startswith(".") or part == "__pycache__" for part in relative.parts)
            or relative.name.endswith(_SKIPPED_SUFFIXES))
