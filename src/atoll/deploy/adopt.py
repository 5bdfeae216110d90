"""On start, the deployment server reconciles the agent processes its predecessor recorded
(``atoll.deploy.state``) before it starts anything:

- the same process (pid *and* start time), listening on its probe port and healthy, whose agent
  is still in the agents folder: **adopted** (supervised again with its port and sessions, not
  restarted; its stable-port socket is taken over from it, see ``atoll.deploy.handover``);
- otherwise, when the process is still there (stale, unhealthy, or its agent was removed): its
  whole process group is stopped (SIGTERM, grace, SIGKILL) before a replacement starts, so no agent
  ever runs twice and its port is free again.

Then it stops the **strays**: processes started with this ``$ATOLL_HOME``'s lease (``--lease``) that
no runner supervises now. The state file records the version that serves; a rollout's new version
in its start-up (the predecessor was killed before it switched), or an old version it was draining
(before a ``restart-server``), is recorded nowhere, and with the lease renewed by the successor it
would never leave: a new version would go on serving beside the adopted one. Each stray gets one
SIGTERM (a drain; none when it already drains: a second SIGTERM would cut its streams), then
``grace``, then SIGKILL with its process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import psutil

from atoll.deploy.handover import Listeners
from atoll.deploy.ports import PortAllocator
from atoll.deploy.process import AdoptedProcess
from atoll.deploy.runner import AgentRunner, Probe
from atoll.deploy.state import AgentRecord

logger = logging.getLogger(__name__)

#: Start times are floats from /proc; the same process reads back the same value, within rounding.
START_TIME_TOLERANCE = 0.05


class Supervised(Protocol):
    """What is reconciled: the supervisor's agents, or the model hosts (``atoll.deploy.model_hosts``)."""

    runners: dict[str, AgentRunner]
    ports: PortAllocator


@dataclass
class Reconciled:
    adopted: list[str]
    stopped: list[str]


def same_process(record: AgentRecord) -> psutil.Process | None:
    try:
        proc = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > START_TIME_TOLERANCE:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    return proc


async def reconcile(supervisor: Supervised, records: dict[str, AgentRecord], listeners: Listeners,
                    probe: Probe, run_dir: Path, *, stop_grace: float
                    ) -> Reconciled:
    result = Reconciled([], [])
    for name, record in records.items():
        proc = same_process(record)
        if proc is None:
            _sweep_group(record)
            continue
        runner = supervisor.runners.get(name)
        reason = await _why_not(supervisor, record, listeners, probe)
        if reason is not None or runner is None:
            logger.warning("agent %s (pid %s) not adopted: %s; stopping its process group", name, record.pid,
                           reason)
            await stop_group(proc, stop_grace)
            result.stopped.append(name)
            continue
        adopted = AdoptedProcess(record.pid, record.probe_port, run_dir / f"{name}.exit", record.create_time)
        runner.adopt(adopted, datetime.fromtimestamp(record.create_time, UTC))
        runner.atoll_version = record.atoll_version
        logger.info("agent %s adopted: pid %s on port %s", name, record.pid, record.port)
        result.adopted.append(name)
    return result


async def _why_not(supervisor: Supervised, record: AgentRecord, listeners: Listeners,
                   probe: Probe) -> str | None:
    """Why the live process of ``record`` cannot be adopted, or None when it can."""
    runner = supervisor.runners.get(record.name)
    if runner is None:
        return "its agent is no longer in the agents folder"
    if runner.active:
        return "the agent is already running"
    if not (await probe(record.probe_port)).ok:
        return "it does not answer its health check"
    if runner.port != record.port:
        if not supervisor.ports.claim(record.name, record.port):
            return f"its port {record.port} belongs to another agent"
        runner.port = record.port
    if not listeners.fetch_from(record.pid, record.port):
        return "it would not hand over its port"
    return None


def strays(lease: Path, supervised: set[int]) -> list[psutil.Process]:
    """This user's processes started with ``--lease lease`` whose pid is not in ``supervised``."""
    wanted, uid = str(lease), os.getuid()
    found = []
    for proc in psutil.process_iter(["cmdline", "uids"]):
        cmdline, uids = proc.info["cmdline"] or [], proc.info["uids"]
        if proc.pid in supervised or uids is None or uids.real != uid:
            continue
        if any(flag == "--lease" and value == wanted for flag, value in itertools.pairwise(cmdline)):
            found.append(proc)
    return found


async def stop_strays(procs: list[psutil.Process], grace: float) -> None:
    for proc in procs:
        logger.warning("pid %s runs with this ATOLL_HOME's lease but no agent record (a rollout cut short "
                       "by the previous deployment server's end): stopping it", proc.pid)
    await asyncio.gather(*(stop_group(proc, grace, drain=not _draining(proc)) for proc in procs))


def _draining(proc: psutil.Process) -> bool:
    """True when ``proc`` listens on no port any more: it had its SIGTERM and drains."""
    try:
        return not any(conn.status == psutil.CONN_LISTEN for conn in proc.net_connections(kind="tcp"))
    except psutil.Error:
        return False


async def stop_group(proc: psutil.Process, grace: float, *, drain: bool = True) -> None:
    """SIGTERM the process group led by ``proc`` (unless not ``drain``), wait ``grace``, SIGKILL
    what is left."""
    members = [proc, *_children(proc)]
    if drain:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
    _, alive = await asyncio.to_thread(psutil.wait_procs, members, grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for member in alive:
        with contextlib.suppress(psutil.Error):
            member.kill()
    await asyncio.to_thread(psutil.wait_procs, alive, 2)


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return list(proc.children(recursive=True))
    except psutil.Error:
        return []


def _sweep_group(record: AgentRecord) -> None:
    """The recorded leader is gone: kill what is left of its group (its MCP servers), but only
    processes started after it, so a reused group id never takes a stranger with it."""
    for proc in psutil.process_iter(["pid", "create_time"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == record.pid and proc.info["create_time"] >= record.create_time:
                proc.kill()
