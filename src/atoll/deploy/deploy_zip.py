"""``POST /agents/deploy``: checksum, safe extraction into a staging folder, config validation, venv,
then swap the new version in, start it, and roll back to the previous version if it does not run.
A running agent is replaced without downtime: the new version starts beside it and the old one
drains only once the new one is healthy (``atoll.deploy.rollout``); if the new one fails, the old
one never stopped serving.

Nothing in the live agent folder changes until the package has passed every check; the replaced
version is kept under ``<agents_dir>/.previous/``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import re
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.deploy.archive import ArchiveLimits, check_members, extract, remove_tree
from atoll.deploy.discover import AgentSpec, agent_file_in, load_spec
from atoll.deploy.errors import BadRequest, Conflict, ManagementError
from atoll.deploy.rollout import RolloutFailed, roll
from atoll.deploy.runner import CONFIG_ERROR_EXIT, RUNNING, UNHEALTHY
from atoll.deploy.supervisor import Supervisor

if TYPE_CHECKING:
    from atoll.deploy.runner import AgentRunner
from atoll.deploy.venvs import ensure_venv
from atoll.errors import ConfigError

logger = logging.getLogger(__name__)

PACKAGE_FILE = ".atoll_package.json"
KEEP_PREVIOUS = 3


#: A deployed agent's name is its folder's name: one path segment, no dot segments, no separators.
AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_agent_name(name: str, what: str) -> None:
    if not AGENT_NAME.fullmatch(name):
        raise BadRequest(f"{what} {name!r} is not a valid agent name: 1-128 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit (no slashes)", error_code="INVALID_NAME")


def read_checksum(folder: Path) -> str | None:
    try:
        checksum = json.loads((folder / PACKAGE_FILE).read_text()).get("sha256")
        return str(checksum) if checksum is not None else None
    except (OSError, ValueError, AttributeError):
        return None


@dataclass
class Deployer:
    supervisor: Supervisor
    agents_dir: Path
    venv_root: Path
    limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    #: Versions kept per agent in ``.previous/``, ``.failed/`` and ``.deleted/`` (``keep_old_versions``).
    keep_old_versions: int = KEEP_PREVIOUS
    #: ``allow_pip_options`` from ``deployment_servers.json`` (never from an uploaded package).
    allow_pip_options: bool = False

    async def deploy(self, data: bytes, *, name: str | None = None, force: bool = False) -> dict[str, Any]:
        if len(data) > self.limits.max_package_bytes:
            raise BadRequest(f"package is {len(data)} bytes (limit {self.limits.max_package_bytes})",
                             error_code="PACKAGE_TOO_LARGE")
        if name is not None:
            check_agent_name(name, "name")  # before the name touches any path
        checksum = hashlib.sha256(data).hexdigest()
        staging = self.agents_dir / ".staging" / uuid.uuid4().hex
        try:
            root = await asyncio.to_thread(stage_package, data, staging, name, self.limits)
            spec = validate_package(root, name)
            async with self.supervisor.reserve(spec.name):
                return await self._install(spec, root, checksum, force)
        finally:
            remove_tree(staging)

    # ---- steps ------------------------------------------------------------------------------------

    async def _install(self, spec: AgentSpec, root: Path, checksum: str, force: bool) -> dict[str, Any]:
        existing = self.supervisor.runners.get(spec.name)
        if existing is not None and self.supervisor.checksums.get(spec.name) == checksum and not force:
            raise Conflict(f"Agent {spec.name} is already deployed with this checksum (use force=true)",
                           error_code="ALREADY_DEPLOYED")
        if existing is not None:
            return await self._install_checked(spec, root, checksum, existing)
        with self.supervisor.room_for(spec):  # MAX_AGENTS, PORT_UNAVAILABLE: before anything is written
            return await self._install_checked(spec, root, checksum, existing)

    async def _install_checked(self, spec: AgentSpec, root: Path, checksum: str, existing: AgentRunner | None
                               ) -> dict[str, Any]:
        await asyncio.to_thread(partial(ensure_venv, allow_pip_options=self.allow_pip_options), self.venv_root, root)
        target = existing.spec.folder if existing is not None else self.agents_dir / spec.name
        running = existing is not None and existing.state in (RUNNING, UNHEALTHY) and existing.proc is not None
        if existing is not None and not running:
            await existing.stop()
        previous = swap_in(root, target, self.agents_dir, self.keep_old_versions)
        write_checksum(target, checksum)
        new_spec = load_spec(agent_file_in(target) or target / "agent.toml")
        if existing is not None and running:
            await self._roll_out(existing, new_spec, target, previous)
        elif await self._start(new_spec) != RUNNING:
            await self._roll_back(new_spec, target, previous)
        self.supervisor.checksums[spec.name] = checksum
        runner = self.supervisor.runners[spec.name]
        return {"name": spec.name, "status": "deployed", "port": runner.port, "checksum": checksum,
                "message": "Agent deployed and started successfully"}

    async def _roll_out(self, runner: AgentRunner, spec: AgentSpec, target: Path, previous: Path | None
                        ) -> None:
        try:
            await roll(runner, spec, drain_timeout=self.supervisor.settings.drain_timeout)
        except RolloutFailed as exc:
            self._restore(target, previous)
            if exc.exit_code == CONFIG_ERROR_EXIT:
                raise BadRequest(exc.message.split(". Log tail:")[0], error_code="INVALID_CONFIG") from exc
            raise ManagementError(f"deployed agent did not start: {exc}", error_code="DEPLOY_FAILED",
                                  status=500) from exc

    def _restore(self, target: Path, previous: Path | None) -> None:
        restore(target, previous, self.agents_dir, self.keep_old_versions)

    async def _start(self, spec: AgentSpec) -> str:
        if spec.name in self.supervisor.runners:
            self.supervisor.replace_spec(spec)
        else:
            self.supervisor.add(spec)
        runner = self.supervisor.runners[spec.name]
        runner.start()
        return await self.supervisor.settle(runner)

    async def _roll_back(self, spec: AgentSpec, target: Path, previous: Path | None) -> None:
        runner = self.supervisor.runners[spec.name]
        reason = runner.error or f"state {runner.state}"
        tail = runner.log_tail
        config_error = runner.config_error
        await runner.stop()
        self._restore(target, previous)
        if previous is None:
            self.supervisor.forget(spec.name)
        else:
            old = load_spec(agent_file_in(target) or target / "agent.toml")
            self.supervisor.replace_spec(old)
            self.supervisor.runners[spec.name].start()
        kept = "the previous version is running again" if previous else "nothing was kept"
        if config_error:
            raise BadRequest(f"{reason}; {kept}", error_code="INVALID_CONFIG")
        raise ManagementError(f"deployed agent did not start ({reason}); {kept}. Log tail: {tail[-5:]}",
                              error_code="DEPLOY_FAILED", status=500)

    async def remove(self, name: str) -> None:
        """``DELETE /agents/{name}``: stop it, forget it, and move its folder aside (not destroyed).

        Its sessions go along (as ``sessions.db`` in the moved folder, where a restored folder picks
        them up again), so a new agent that reuses the name starts with none."""
        # Here, not at the top: atoll.sessions (its manager, store and message models) is needed only
        # when an agent is deleted, and the supervisor's memory is budgeted.
        from atoll.sessions.paths import LEGACY_NAME, agent_session_file, move_database, sessions_dir

        runner = await self.supervisor.remove(name)
        moved = set_aside(runner.spec.folder, self.agents_dir, self.keep_old_versions)
        sessions = agent_session_file(runner.spec.name)
        if sessions.exists():
            target = moved / LEGACY_NAME if moved.is_dir() and not (moved / LEGACY_NAME).exists() \
                else sessions_dir() / ".deleted" / f"{sessions.stem}-{uuid.uuid4().hex[:6]}.db"
            move_database(sessions, target)


# ---- the agent folders, whichever backend runs them (also atoll.ray.backend) -------------------------


def stage_package(data: bytes, staging: Path, name: str | None, limits: ArchiveLimits) -> Path:
    """Unpack the package ``data`` under ``staging`` (checked member by member); its agent folder."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
        raise BadRequest(f"not a zip archive: {exc}", error_code="INVALID_PACKAGE") from exc
    with archive:
        members = check_members(archive, limits)
        # The folder is named after the agent so a config without [agent] name gets that name.
        dest = staging / (name or "package")
        dest.mkdir(parents=True)
        extract(archive, members, dest, limits)
    return _package_root(dest)


def validate_package(root: Path, name: str | None) -> AgentSpec:
    """The staged agent's spec; a 400 naming the problem (paths shown as ``<package>``)."""
    agent_file = agent_file_in(root)
    assert agent_file is not None
    try:
        spec = load_spec(agent_file)
    except ConfigError as exc:
        detail = str(exc).replace(str(root.resolve()), "<package>")
        raise BadRequest(detail, error_code="INVALID_CONFIG") from exc
    check_agent_name(spec.name, "the package's agent name")
    if name and spec.name != name:
        raise BadRequest(f"name '{name}' does not match the package's agent name '{spec.name}'",
                         error_code="NAME_MISMATCH")
    return spec


def write_checksum(folder: Path, checksum: str) -> None:
    (folder / PACKAGE_FILE).write_text(json.dumps({"sha256": checksum, "deployed_at": datetime.now(UTC).isoformat()}))


def swap_in(staged_root: Path, target: Path, agents_dir: Path, keep_old_versions: int) -> Path | None:
    """Move the staged folder to ``target``; the version it replaces goes to ``.previous`` (returned)."""
    previous = None
    if target.exists():
        keep = agents_dir / ".previous"
        keep.mkdir(parents=True, exist_ok=True)
        previous = keep / f"{target.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        os.replace(target, previous)
        os.utime(previous)  # a move keeps the folder's old time; pruning goes by it
        _prune(keep, target.name, keep_old_versions)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged_root, target)
    return previous


def restore(target: Path, previous: Path | None, agents_dir: Path, keep_old_versions: int) -> None:
    """Put the previous version's folder back (the failed one goes to ``.failed``)."""
    failed = agents_dir / ".failed" / f"{target.name}-{uuid.uuid4().hex[:6]}"
    failed.parent.mkdir(parents=True, exist_ok=True)
    os.replace(target, failed)
    os.utime(failed)
    _prune(failed.parent, target.name, keep_old_versions)
    if previous is not None:
        os.replace(previous, target)


def set_aside(folder: Path, agents_dir: Path, keep_old_versions: int) -> Path:
    """Move a removed agent's folder to ``.deleted`` (kept, not destroyed); where it went."""
    trash = agents_dir / ".deleted"
    moved = trash / f"{folder.name}-{uuid.uuid4().hex[:6]}"
    if folder.exists() and folder.parent.resolve() == agents_dir.resolve():
        trash.mkdir(parents=True, exist_ok=True)
        os.replace(folder, moved)
        os.utime(moved)
        _prune(trash, folder.name, keep_old_versions)
    return moved


def _package_root(dest: Path) -> Path:
    """The folder holding the agent file: the archive's top, or its single top-level folder."""
    if agent_file_in(dest):
        return dest
    children = [p for p in dest.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(children) == 1 and children[0].is_dir() and agent_file_in(children[0]):
        return children[0]
    raise BadRequest("package has no agent.toml or agent.json at its top", error_code="INVALID_PACKAGE")


def _prune(keep: Path, name: str, count: int = KEEP_PREVIOUS) -> None:
    """Keep the newest ``count`` versions of ``name`` in ``keep`` (``.previous``, ``.failed``,
    ``.deleted``): old transcripts (``sessions.db``) and code must not pile up forever."""
    versions = sorted(keep.glob(f"{name}-*"), key=lambda p: p.stat().st_mtime)
    for old in versions[:max(0, len(versions) - count)]:
        remove_tree(old)
