"""The model hosts: one ``atoll model-host`` process per embedded model that agents share.

Every agent with ``provider = "local"`` used to load its own copy of the model (its own llama.cpp
context and threads). Here the deployment server runs ONE host per distinct model (file, context
length, threads: ``LocalModel``) and tells each such agent where it is when it spawns the agent:

- ``ATOLL_MODEL_HOST``: the host's stable loopback URL (its port is held like an agent's, see
  ``atoll.deploy.handover``, so restarts of the host never change it);
- ``ATOLL_MODEL_HOST_TOKEN_FILE``: a file (owner-only) with the agent's own token, signed with a
  secret only the host and this server read (``atoll.httpkit.bearer.signed_token``): no other local
  user can use the host, and the host knows which agent calls (its fair queue rotates over them).

A host is started with the first agent that needs it, and is supervised exactly like an agent, by
an ``AgentRunner`` of its own (readiness, health, restart with backoff, crash-loop limit, logs under
``logs/<host name>/``, its record in the state file and adoption after a restart of this server);
it is stopped with the fleet. It is not an agent: it has no route at the front door, and shows in
the listing (``GET /agents``, ``atoll status``) under ``model_hosts``. The deployment server never
imports llama.cpp itself. ``share_local_models = false`` (or no llama-cpp-python in this server's
interpreter) turns hosts off: each agent loads its own model again.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any

from atoll.deploy.discover import AgentSpec, LocalModel
from atoll.deploy.handover import Listeners
from atoll.deploy.policy import CrashLoopGuard
from atoll.deploy.ports import PortAllocator
from atoll.deploy.process import Launch, supervision_args
from atoll.deploy.runner import FAILED, STOPPED, AgentRunner, RunnerDeps
from atoll.deploy.state import AgentRecord
from atoll.deploy.supervisor import SupervisorSettings, describe
from atoll.httpkit.bearer import signed_token

logger = logging.getLogger(__name__)

HOST_ENV, TOKEN_FILE_ENV = "ATOLL_MODEL_HOST", "ATOLL_MODEL_HOST_TOKEN_FILE"


def host_name(model: LocalModel) -> str:
    """``model-host-<file stem>-<hash of the settings>``: readable, and one per distinct model."""
    digest = hashlib.sha256(f"{model.path}\0{model.context_length}\0{model.threads}".encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(model.path).stem)[:60]
    return f"model-host-{stem}-{digest}"


def llama_cpp_available() -> bool:
    """True when this interpreter (the one hosts run with) has llama-cpp-python; found, not imported."""
    return importlib.util.find_spec("llama_cpp") is not None


class ModelHosts:
    """The hosts by name, their models, and the credentials agents reach them with."""

    def __init__(self, deps: RunnerDeps, ports: PortAllocator, listeners: Listeners, settings: SupervisorSettings,
                 run_dir: Path, *, enabled: bool = True, startup_timeout: float | None = None) -> None:
        self.deps = deps
        self.ports = ports
        self.listeners = listeners
        self.settings = settings
        self.enabled = enabled
        self.startup_timeout = startup_timeout
        self.folder = run_dir / "model-hosts"
        self.runners: dict[str, AgentRunner] = {}
        self.models: dict[str, LocalModel] = {}
        self._secret: bytes | None = None

    # ---- what agents are told -------------------------------------------------------------------

    def env_for(self, spec: AgentSpec) -> dict[str, str]:
        """The variables an agent is spawned with: its host (started now if it is not running)
        and its token file; none for an agent that is not on the embedded model."""
        if not self.enabled or spec.local_model is None:
            return {}
        runner = self.runner_for(spec.local_model)
        if not runner.active:
            runner.start()
        return {HOST_ENV: f"http://127.0.0.1:{runner.port}", TOKEN_FILE_ENV: str(self._token_file(spec.name))}

    def runner_for(self, model: LocalModel) -> AgentRunner:
        name = host_name(model)
        runner = self.runners.get(name)
        if runner is None:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            spec = AgentSpec(name=name, folder=self.folder, agent_file=Path(model.path),
                             startup_timeout=self.startup_timeout)
            settings = self.settings
            runner = AgentRunner(spec, self.ports.assign(name), self.deps, timeouts=settings.timeouts,
                                 backoff=settings.backoff,
                                 guard=CrashLoopGuard(settings.max_restarts, settings.restart_window),
                                 restart_on_failure=settings.restart_on_failure)
            self.runners[name], self.models[name] = runner, model
        return runner

    def plan(self, specs: list[AgentSpec]) -> None:
        """Make (without starting) the runners the discovered agents will need, so the hosts a
        predecessor left running can be adopted before any agent starts."""
        if self.enabled:
            for spec in specs:
                if spec.local_model is not None:
                    self.runner_for(spec.local_model)

    def start_for(self, specs: list[AgentSpec]) -> None:
        """Start the hosts of agents that run without being spawned by us (adopted ones)."""
        for spec in specs:
            self.env_for(spec)

    # ---- the process ----------------------------------------------------------------------------

    def command(self, spec: AgentSpec, launch: Launch) -> list[str]:
        """``atoll model-host`` for the host named ``spec.name`` (the hosts' ``ProcessFactory``)."""
        model = self.models[spec.name]
        self._signing_secret()
        return [sys.executable, "-m", "atoll", "model-host", "--model", model.path,
                "--context-length", str(model.context_length), "--threads", str(model.threads),
                "--secret-file", str(self._secret_file()), "--log-level", "warning", *supervision_args(launch)]

    def on_state(self, name: str, state: str) -> None:
        """A host that stopped or gave up closes its port: agents are refused at once (the
        ``ollama`` client's error) instead of waiting in its queue until they time out."""
        runner = self.runners.get(name)
        if runner is not None and state in (STOPPED, FAILED):
            self.listeners.release(runner.port)

    # ---- the fleet ------------------------------------------------------------------------------

    async def stop_all(self) -> None:
        await asyncio.gather(*(r.stop() for r in self.runners.values()), return_exceptions=True)

    async def release_unused(self, agents: list[AgentSpec]) -> None:
        """Stop and forget the hosts none of ``agents`` runs on (its last agent was removed, or
        redeployed onto another model): a host holds a model's memory for its agents only."""
        used = {host_name(spec.local_model) for spec in agents if spec.local_model is not None}
        for name in [name for name in self.runners if name not in used]:
            runner = self.runners.pop(name)
            del self.models[name]
            await runner.stop()
            self.ports.release(name)
            self.listeners.release(runner.port)

    async def detach_all(self) -> None:
        await asyncio.gather(*(r.detach() for r in self.runners.values()), return_exceptions=True)

    def claim_ports(self, records: dict[str, AgentRecord]) -> None:
        """Keep each host on the port its agents were told, adopted or not (an adopted agent keeps
        the URL it was started with)."""
        for name, record in records.items():
            runner = self.runners.get(name)
            if runner is not None and runner.port != record.port and self.ports.claim(name, record.port):
                runner.port = record.port

    def records(self) -> list[AgentRecord]:
        out = []
        for name, runner in sorted(self.runners.items()):
            proc = runner.proc
            if proc is None or proc.returncode is not None:
                continue
            out.append(AgentRecord(name=name, pid=proc.pid, create_time=proc.create_time, port=runner.port,
                                   probe_port=runner.probe_port(proc), checksum=name, folder=str(self.folder),
                                   atoll_version=runner.atoll_version))
        return out

    def statuses(self, agents: list[AgentSpec]) -> list[dict[str, Any]]:
        """Each host as ``describe`` shows an agent, plus its model and which of ``agents`` run on it."""
        on: dict[str, list[str]] = {}
        for spec in agents:
            if spec.local_model is not None:
                on.setdefault(host_name(spec.local_model), []).append(spec.name)
        out = []
        for name, runner in sorted(self.runners.items()):
            model = self.models[name]
            out.append({**describe(runner), "folder": None, "model": model.path,
                        "context_length": model.context_length, "threads": model.threads,
                        "agents": sorted(on.get(name, []))})
        return out

    # ---- credentials ----------------------------------------------------------------------------

    def _secret_file(self) -> Path:
        return self.folder / "secret"

    def _signing_secret(self) -> bytes:
        """The secret that signs agents' tokens: made once, kept (owner-only) so that adopted agents
        and a restarted host still agree on it."""
        if self._secret is None:
            try:
                self._secret = self._secret_file().read_bytes().strip() or None
            except FileNotFoundError:
                self._secret = None
        if self._secret is None:
            self._secret = secrets.token_urlsafe(32).encode()
            _write_private(self._secret_file(), self._secret)
        return self._secret

    def _token_file(self, agent: str) -> Path:
        path = self.folder / f"{agent}.token"
        _write_private(path, signed_token(self._signing_secret(), agent).encode())
        return path


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only (created so, never widened for a moment)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(scratch, path)
