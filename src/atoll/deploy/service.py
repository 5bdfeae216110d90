"""The deployment server assembled: config -> discovery -> supervisor -> HTTP app, and its run loop
(bind the management port, start the agents, report, serve until told to stop, stop every agent)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from atoll.config import atoll_home
from atoll.deploy.admin_token import admin_token_path, ensure_admin_token
from atoll.deploy.agent_keys import AgentKeys
from atoll.deploy.app import create_app, make_client
from atoll.deploy.config import DeploymentConfig, state_path
from atoll.deploy.context import DeployContext
from atoll.deploy.deploy_zip import Deployer, read_checksum
from atoll.deploy.discover import AgentSpec, Discovery, Problem, discover
from atoll.deploy.errors import ManagementError
from atoll.deploy.logs import log_paths, tail
from atoll.deploy.policy import BackoffPolicy, Timeouts
from atoll.deploy.ports import PortAllocator
from atoll.deploy.process import CommandFor, ProcessFactory, agent_command
from atoll.deploy.runner import RunnerDeps
from atoll.deploy.supervisor import Supervisor, SupervisorSettings
from atoll.deploy.ui.events import StateFeed
from atoll.deploy.ui.samples import Sampler
from atoll.deploy.venvs import venv_python
from atoll.httpkit.serving import UVICORN_OPTIONS
from atoll.net import PROBE_HEADER, bind_tcp

logger = logging.getLogger(__name__)

HEALTH_PROBE_TIMEOUT = 2.0


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the deployment server owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def settings_from(config: DeploymentConfig) -> SupervisorSettings:
    return SupervisorSettings(
        timeouts=Timeouts(startup=config.startup_timeout, stop=config.stop_timeout,
                          health_interval=config.health_check_interval,
                          health_threshold=config.health_failure_threshold),
        backoff=BackoffPolicy(initial=config.backoff_initial, cap=config.backoff_max,
                              reset_after=config.healthy_reset_after),
        max_restarts=config.max_restarts,
        restart_window=config.restart_window,
        restart_on_failure=config.restart_on_failure,
    )


def bind_api_socket(config: DeploymentConfig) -> socket.socket:
    """Bind the management port, moving up past busy ports when ``auto_discover_port`` is set."""
    host = config.bind_host
    candidates = range(config.api_port, config.api_port + (100 if config.auto_discover_port else 1))
    for port in candidates:
        try:
            return bind_tcp(host, port, backlog=128)
        except OSError:
            continue
    raise ManagementError(f"port {config.api_port} on {host} is in use"
                          + ("" if config.auto_discover_port else "; choose another with --api-port"),
                          error_code="PORT_UNAVAILABLE")


@dataclass
class DeploymentServer:
    config: DeploymentConfig
    agents_dir: Path
    logs_dir: Path
    supervisor: Supervisor
    deployer: Deployer
    client: httpx.AsyncClient
    discovery: Discovery
    agent_keys: AgentKeys
    feed: StateFeed
    sampler: Sampler
    #: Where the generated admin token is (None when one is configured).
    token_file: Path | None = None

    @classmethod
    def build(cls, config: DeploymentConfig, agents_dir: Path, *, command_for: CommandFor | None = None,
              env_base: dict[str, str] | None = None, home: Path | None = None) -> DeploymentServer:
        """Must be called inside the event loop that will run it."""
        home = home or atoll_home()
        token_file = None
        if not config.admin_token:
            config = config.model_copy(update={"admin_token": ensure_admin_token(home)})
            token_file = admin_token_path(home)
        logs_dir, venv_root = home / "logs", home / "venvs"
        client = make_client()
        agent_keys, feed = AgentKeys(), StateFeed()

        def command(spec: AgentSpec, port: int) -> list[str]:
            return agent_command(spec, port, venv_python(venv_root, spec.folder))

        factory = ProcessFactory(logs_dir, command_for=command_for or command, pass_env=config.pass_env,
                                 log_max_bytes=config.log_max_bytes, log_backups=config.log_backups,
                                 env_base=env_base, agent_keys=agent_keys, secrets=config.secrets())

        async def probe(port: int) -> bool:
            try:
                response = await client.get(f"http://127.0.0.1:{port}/health", timeout=HEALTH_PROBE_TIMEOUT,
                                            headers={PROBE_HEADER: "supervisor"})
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        def log_tail(name: str, lines: int) -> list[str]:
            return tail(log_paths(logs_dir, name)["stderr"], lines)

        deps = RunnerDeps(spawn=factory, probe=probe, log_tail=log_tail, on_state=feed.publish)
        ports = PortAllocator(config.base_port, reserved={config.api_port})
        supervisor = Supervisor(deps, ports, settings_from(config), max_agents=config.max_agents)
        found = discover(agents_dir)
        supervisor.problems = list(found.problems)
        for spec in found.specs:
            try:
                supervisor.add(spec)
            except ManagementError as exc:
                supervisor.problems.append(Problem(folder=spec.folder, name=spec.name, reason=str(exc)))
                continue
            checksum = read_checksum(spec.folder)
            if checksum:
                supervisor.checksums[spec.name] = checksum
        deployer = Deployer(supervisor, agents_dir, venv_root)
        sampler = Sampler(supervisor, client, agent_keys, interval=config.sample_interval)
        return cls(config, agents_dir, logs_dir, supervisor, deployer, client, found, agent_keys, feed, sampler,
                   token_file)

    def context(self) -> DeployContext:
        return DeployContext(self.supervisor, self.deployer, self.config, self.logs_dir, self.client,
                             sampler=self.sampler, agent_keys=self.agent_keys, feed=self.feed)

    async def run(self, stop: asyncio.Event, *, on_ready: Callable[[str], Awaitable[None]] | None = None,
                  sock: socket.socket | None = None) -> None:
        """Serve until ``stop`` is set, then stop every agent (SIGTERM -> grace -> SIGKILL)."""
        sock = sock or bind_api_socket(self.config)
        port = sock.getsockname()[1]
        server = _QuietServer(uvicorn.Config(create_app(self.context()), log_level="warning",
                                             lifespan="off", access_log=False, **UVICORN_OPTIONS))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        url = f"http://{self.config.bind_host}:{port}"
        if not self.config.loopback_only:
            logger.warning("listening on %s beyond loopback: the front door passes requests through, so "
                           "agents without [server] api_keys are open to anyone who can reach it", url)
        sampling = asyncio.create_task(self.sampler.run(stop), name="dashboard-samples")
        try:
            self._write_state(url)
            await self.supervisor.start_all()
            if on_ready is not None:
                await on_ready(url)
            await stop.wait()
        finally:
            self.feed.close()
            sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampling
            server.should_exit = True
            await self.supervisor.stop_all()
            with contextlib.suppress(Exception):
                await serving
            await self.client.aclose()
            sock.close()
            self._clear_state()

    def _write_state(self, url: str) -> None:
        path = state_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"pid": os.getpid(), "url": url, "agents_dir": str(self.agents_dir)}))

    def _clear_state(self) -> None:
        path = state_path()
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
