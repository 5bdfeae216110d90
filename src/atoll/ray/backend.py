"""The management API's backend on Ray Serve (:class:`atoll.deploy.backend.Backend`): each agent its
own Serve application, deployed with ``serve.run`` one application at a time (so nothing else on a
shared cluster is touched), states and replica counts read from ``serve.status()``.

* start: deploy the application (idempotent: a running one is left alone); stop: delete it;
  restart: deploy it again, which Serve rolls out replica by replica (old replicas finish their
  requests first);
* deploy a zip: the package is checked and swapped into the agents folder exactly as on the local
  backend (:mod:`atoll.deploy.deploy_zip`), then deployed as a new version of the application, rolled
  out by Serve; if it does not run, the previous folder comes back and is deployed again;
* logs: the replicas' Serve log files on this machine's node.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from atoll._version import __version__
from atoll.config import load_agent_file
from atoll.deploy.archive import ArchiveLimits, remove_tree
from atoll.deploy.deploy_zip import (
    read_checksum,
    restore,
    set_aside,
    stage_package,
    swap_in,
    validate_package,
    write_checksum,
)
from atoll.deploy.discover import AgentSpec, Problem, agent_file_in, discover, load_spec
from atoll.deploy.errors import AgentNotFound, BadRequest, Conflict, ManagementError
from atoll.deploy.logs import tail
from atoll.deploy.metrics import STATES, Family
from atoll.deploy.passthrough import PREFIX
from atoll.deploy.runner import FAILED, RUNNING, STOPPED
from atoll.errors import ConfigError
from atoll.ray.apps import application
from atoll.ray.serve_config import agent_application
from atoll.ray.states import AppState, agent_states

logger = logging.getLogger(__name__)


class RayBackend:
    def __init__(self, agents_dir: Path, *, http_port: int, secret: str, session_url: str | None,
                 startup_timeout: float = 120.0, keep_old_versions: int = 3, max_agents: int = 50,
                 limits: ArchiveLimits | None = None) -> None:
        self.agents_dir = agents_dir
        self.http_port = http_port
        self.secret = secret
        self.session_url = session_url
        self.startup_timeout = startup_timeout
        self.keep_old_versions = keep_old_versions
        self.max_agents = max_agents
        self.limits = limits or ArchiveLimits()
        self.max_package_bytes = self.limits.max_package_bytes
        self.specs: dict[str, AgentSpec] = {}
        self.failures: list[Problem] = []
        self._busy: set[str] = set()
        found = discover(agents_dir)
        self.failures = list(found.problems)
        for spec in found.specs:
            try:
                self._application(spec)
            except ConfigError as exc:
                self.failures.append(Problem(folder=spec.folder, name=spec.name, reason=str(exc)))
                continue
            self.specs[spec.name] = spec

    # ---- Serve -------------------------------------------------------------------------------------

    def _application(self, spec: AgentSpec) -> dict[str, Any]:
        """The agent's Serve application (raises ``ConfigError``: several replicas with SQLite sessions)."""
        return agent_application(spec.agent_file, load_agent_file(spec.agent_file),
                                 session_url_env=bool(self.session_url))

    async def _states(self) -> dict[str, AppState]:
        from ray import serve

        return agent_states(await asyncio.to_thread(serve.status))

    async def _deploy(self, spec: AgentSpec, *, wait: bool) -> AppState | None:
        """Deploy (or roll out again) the agent's application; with ``wait``, until Serve says it runs
        or failed (``startup_timeout`` at most), and its state then."""
        from ray import serve

        app_spec = self._application(spec)
        target = application(app_spec, secret=self.secret, session_url=self.session_url or "")
        deploy = functools.partial(serve._run, target, name=app_spec["name"], route_prefix=app_spec["route_prefix"],
                                   _blocking=wait)
        try:
            await asyncio.wait_for(asyncio.to_thread(deploy), self.startup_timeout)
        except RuntimeError as exc:  # Serve's "Deploying application ... failed": the state says why
            logger.warning("agent %s did not deploy: %s", spec.name, exc)
        except TimeoutError:
            logger.warning("agent %s not running after %g s", spec.name, self.startup_timeout)
        return (await self._states()).get(spec.name) if wait else None

    async def _delete(self, name: str) -> None:
        from ray import serve

        await asyncio.to_thread(serve.delete, name)

    async def start_all(self) -> None:
        specs = [s for s in self.specs.values() if s.auto_start]
        await asyncio.gather(*(self._deploy(spec, wait=True) for spec in specs))

    async def stop_all(self) -> None:
        """Delete every agent's application (on a shared cluster, this deployment leaves nothing)."""
        deployed = await self._states()
        await asyncio.gather(*(self._delete(name) for name in self.specs if name in deployed),
                             return_exceptions=True)

    # ---- the management API ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _command(self, name: str) -> AsyncIterator[None]:
        if name in self._busy:
            raise Conflict(f"Another command is in progress for agent {name}", error_code="AGENT_BUSY")
        self._busy.add(name)
        try:
            yield
        finally:
            self._busy.discard(name)

    def _spec(self, name: str) -> AgentSpec:
        try:
            return self.specs[name]
        except KeyError:
            folder = next((s.name for s in self.specs.values() if s.folder.name == name), None)
            raise AgentNotFound(name, folder) from None

    def agent_file(self, name: str) -> Path:
        """The agent's file (raises :class:`atoll.deploy.errors.AgentNotFound`)."""
        return self._spec(name).agent_file

    def _describe(self, spec: AgentSpec, app: AppState | None) -> dict[str, Any]:
        deployed = app.deployed_at if app is not None else None
        running = app is not None and app.state == RUNNING
        return {
            "name": spec.name, "status": app.state if app is not None else STOPPED,
            "port": self.http_port, "pid": None, "restarts": None,
            "uptime_s": round(time.time() - deployed, 3) if running and deployed else None,
            "start_time": datetime.fromtimestamp(deployed, UTC).isoformat() if deployed else None,
            "last_health_check": None, "last_health_ok": None, "degraded_reasons": [], "last_exit_code": None,
            "error_message": (app.message or None) if app is not None else None, "log_tail": [],
            "checksum": read_checksum(spec.folder), "adopted": False, "atoll_version": __version__,
            "folder": str(spec.folder), "url": f"http://127.0.0.1:{self.http_port}{PREFIX}{quote(spec.name, safe='')}",
            "backend": "ray",
            "replicas": {"running": app.running_replicas if app is not None else 0,
                         "states": app.replicas if app is not None else {}},
        }

    async def statuses(self) -> list[dict[str, Any]]:
        states = await self._states()
        return [self._describe(spec, states.get(name)) for name, spec in sorted(self.specs.items())]

    async def status(self, name: str) -> dict[str, Any]:
        spec = self._spec(name)
        return self._describe(spec, (await self._states()).get(name))

    def problems(self) -> list[dict[str, Any]]:
        return [{"folder": str(p.folder), "name": p.name, "reason": p.reason} for p in self.failures]

    def model_hosts(self) -> list[dict[str, Any]]:
        return []  # an agent on the embedded model loads it in each replica

    async def start(self, name: str, *, wait: bool) -> dict[str, Any]:
        spec = self._spec(name)
        async with self._command(name):
            current = (await self._states()).get(name)
            if current is None or current.state == FAILED:
                await self._deploy(spec, wait=wait)
        return await self.status(name)

    async def stop(self, name: str) -> dict[str, Any]:
        spec = self._spec(name)
        async with self._command(name):
            await self._delete(spec.name)
        return await self.status(name)

    async def restart(self, name: str, *, wait: bool, graceful: bool) -> dict[str, Any]:
        """Always graceful: Serve starts new replicas before it stops the old ones."""
        spec = self._spec(name)
        async with self._command(name):
            await self._deploy(spec, wait=wait)
        return await self.status(name)

    async def remove(self, name: str) -> None:
        spec = self._spec(name)
        async with self._command(name):
            await self._delete(spec.name)
            set_aside(spec.folder, self.agents_dir, self.keep_old_versions)
            del self.specs[name]

    async def deploy(self, data: bytes, *, name: str | None, force: bool) -> dict[str, Any]:
        if len(data) > self.limits.max_package_bytes:
            raise BadRequest(f"package is {len(data)} bytes (limit {self.limits.max_package_bytes})",
                             error_code="PACKAGE_TOO_LARGE")
        checksum = hashlib.sha256(data).hexdigest()
        staging = self.agents_dir / ".staging" / uuid.uuid4().hex
        try:
            root = await asyncio.to_thread(stage_package, data, staging, name, self.limits)
            spec = validate_package(root, name)
            async with self._command(spec.name):
                return await self._install(spec, root, checksum, force)
        finally:
            remove_tree(staging)

    async def _install(self, spec: AgentSpec, root: Path, checksum: str, force: bool) -> dict[str, Any]:
        existing = self.specs.get(spec.name)
        # No await before the new spec is recorded below: concurrent deploys of new names see it.
        if existing is None and len(self.specs) >= self.max_agents:
            raise Conflict(f"max_agents ({self.max_agents}) reached", error_code="MAX_AGENTS")
        if existing is not None and read_checksum(existing.folder) == checksum and not force:
            raise Conflict(f"Agent {spec.name} is already deployed with this checksum (use force=true)",
                           error_code="ALREADY_DEPLOYED")
        try:
            self._application(spec)
        except ConfigError as exc:
            raise BadRequest(str(exc).replace(str(root), "<package>"), error_code="INVALID_CONFIG") from exc
        target = existing.folder if existing is not None else self.agents_dir / spec.name
        previous = swap_in(root, target, self.agents_dir, self.keep_old_versions)
        write_checksum(target, checksum)
        new_spec = load_spec(agent_file_in(target) or target / "agent.toml")
        self.specs[spec.name] = new_spec
        state = await self._deploy(new_spec, wait=True)
        if state is None or state.state != RUNNING:
            reason = state.message if state is not None and state.message else f"state {state.state if state else '-'}"
            restore(target, previous, self.agents_dir, self.keep_old_versions)
            if previous is None:
                del self.specs[spec.name]
                await self._delete(spec.name)
            else:
                self.specs[spec.name] = load_spec(agent_file_in(target) or target / "agent.toml")
                await self._deploy(self.specs[spec.name], wait=False)
            kept = "the previous version is deployed again" if previous else "nothing was kept"
            raise ManagementError(f"deployed agent did not start ({reason}); {kept}", error_code="DEPLOY_FAILED",
                                  status=500)
        return {"name": spec.name, "status": "deployed", "port": self.http_port, "checksum": checksum,
                "message": "Agent deployed and rolled out by Ray Serve"}

    async def logs(self, name: str, lines: int) -> dict[str, list[str]]:
        """Serve's log files of the agent's replicas on this node (``stderr``), newest last."""
        self._spec(name)
        from ray._private import worker

        node: Any = worker._global_node  # this driver's node: its logs folder is the session's
        logs_dir = Path(node.get_logs_dir_path()) / "serve"
        files = sorted(logs_dir.glob(f"replica_{name}_*.log"), key=lambda p: p.stat().st_mtime)
        collected = [line for path in files for line in tail(path, lines)]
        return {"stdout": [], "stderr": collected[-lines:]}

    async def agent_metrics(self) -> list[Family]:
        states = await self._states()
        state = Family("atoll_deploy_agent_state", "gauge", "1 for the state each agent is in, 0 for the others.")
        replicas = Family("atoll_deploy_agent_replicas", "gauge", "Replicas of each agent Serve runs, by state.")
        for name in sorted(self.specs):
            app = states.get(name)
            current = app.state if app is not None else STOPPED
            for candidate in STATES:
                state.add(1.0 if current == candidate else 0.0, agent=name, state=candidate)
            for replica_state, count in sorted((app.replicas if app is not None else {}).items()):
                replicas.add(count, agent=name, state=replica_state)
        return [state, replicas]
