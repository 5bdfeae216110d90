"""The deployment server assembled: config -> discovery -> supervisor -> HTTP app, and its run loop
(bind the management port, adopt the agents a predecessor left running, start the others, report,
serve until told to stop, then stop every agent, or leave them running for ``restart-server``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from uvicorn.config import Config  # from their modules: uvicorn.Server would load uvicorn.main
from uvicorn.server import Server  # (atoll.deploy.footprint keeps the package's __init__ lazy)

from atoll._version import __version__
from atoll.config import atoll_home
from atoll.deploy.admin_token import admin_token_path, ensure_admin_token
from atoll.deploy.adopt import Supervised, reconcile, stop_strays, strays
from atoll.deploy.agent_keys import AgentKeys
from atoll.deploy.app import create_app, make_client
from atoll.deploy.config import STATE_FILE_NAME, DeploymentConfig
from atoll.deploy.context import DeployContext
from atoll.deploy.deploy_zip import Deployer, read_checksum
from atoll.deploy.discover import AgentSpec, Discovery, Problem, discover
from atoll.deploy.errors import ManagementError
from atoll.deploy.handover import Listeners
from atoll.deploy.logs import log_paths, rotate, tail
from atoll.deploy.model_hosts import ModelHosts, llama_cpp_available
from atoll.deploy.policy import BackoffPolicy, Timeouts
from atoll.deploy.ports import PortAllocator
from atoll.deploy.process import CommandFor, Launch, ProcessFactory, agent_command
from atoll.deploy.relay_client import RelayClient
from atoll.deploy.remote import plain_http_warnings
from atoll.deploy.runner import FAILED, STOPPED, AgentRunner, Health, Probe, RunnerDeps
from atoll.deploy.state import (
    AgentRecord,
    Lease,
    StateFile,
    folder_checksum,
    other_live_server,
    read_records,
    read_state,
)
from atoll.deploy.supervisor import Supervisor, SupervisorSettings
from atoll.deploy.ui.events import StateFeed
from atoll.deploy.ui.samples import Sampler
from atoll.deploy.venvs import venv_python
from atoll.httpkit.serving import UVICORN_OPTIONS, DrainGate, tls_options
from atoll.net import PROBE_HEADER, bind_tcp

logger = logging.getLogger(__name__)

HEALTH_PROBE_TIMEOUT = 2.0
#: Instance ids of the deployment servers running in this process (tests run several).
_RUNNING_HERE: set[str] = set()


class QuietServer(Server):
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
        drain_timeout=config.drain_timeout,
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
    #: Relays (front door, dashboard chat): long streams, capped per agent.
    client: RelayClient
    #: Health probes, listings and management calls: a pool of their own, so relays held open
    #: cannot starve them (the supervisor would restart healthy agents).
    probes: httpx.AsyncClient
    discovery: Discovery
    agent_keys: AgentKeys
    feed: StateFeed
    sampler: Sampler
    listeners: Listeners
    state: StateFile
    lease: Lease
    run_dir: Path
    factory: ProcessFactory
    model_hosts: ModelHosts
    #: Where the generated admin token is (None when one is configured).
    token_file: Path | None = None
    #: Set by ``request_restart`` (SIGHUP): leave the agents running for the re-executed server.
    restarting: bool = False
    #: The front door's listening socket kept for the re-executed server.
    front_door: socket.socket | None = None
    #: Marks the front door's answers ``Connection: close`` while it drains for a re-exec.
    gate: DrainGate = field(default_factory=lambda: DrainGate(None))
    instance: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: The checksum of the files each agent process was started from, by (pid, start time): an
    #: adopted process keeps its recorded one, a new one gets its folder's when first recorded.
    _checksums: dict[tuple[int, float], str] = field(default_factory=dict)
    #: Rolling adopted agents over to files that changed while no deployment server ran.
    _rolling: asyncio.Task[None] | None = None
    #: Stopping the processes a predecessor left running unrecorded (``atoll.deploy.adopt.strays``).
    _stopping_strays: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, config: DeploymentConfig, agents_dir: Path, *, command_for: CommandFor | None = None,
              env_base: dict[str, str] | None = None, home: Path | None = None,
              inherited: dict[str, int] | None = None) -> DeploymentServer:
        """Must be called inside the event loop that will run it. ``inherited``: the agents'
        stable-port sockets handed down by ``restart-server`` (port -> fd)."""
        home = home or atoll_home()
        token_file = None
        if not config.admin_token:
            config = config.model_copy(update={"admin_token": ensure_admin_token(home)})
            token_file = admin_token_path(home)
        logs_dir, venv_root, run_dir = home / "logs", home / "venvs", home / "run"
        client, probes = RelayClient(config.remote_servers), make_client(config.remote_servers)
        for warning in plain_http_warnings(config.remote_servers):
            logger.warning(warning)
        agent_keys, feed = AgentKeys(run_dir / "agent_keys.json"), StateFeed()
        listeners = Listeners()
        listeners.adopt_inherited(inherited or {})

        def command(spec: AgentSpec, launch: Launch) -> list[str]:
            return agent_command(spec, launch, venv_python(venv_root, spec.folder))

        factory = ProcessFactory(logs_dir, listeners, run_dir, command_for=command_for or command,
                                 pass_env=config.pass_env, orphan_grace=config.orphan_grace, env_base=env_base,
                                 agent_keys=agent_keys, secrets=config.secrets())

        def log_tail(name: str, lines: int) -> list[str]:
            return tail(log_paths(logs_dir, name)["stderr"], lines)

        deps = RunnerDeps(spawn=factory, probe=_prober(probes), log_tail=log_tail)
        ports = PortAllocator(config.base_port, reserved={config.api_port})
        supervisor = Supervisor(deps, ports, settings_from(config), max_agents=config.max_agents)
        supervisor.on_port_released = listeners.release
        hosts = _model_hosts(config, deps, ports, listeners, run_dir, factory, logs_dir, feed)
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
        hosts.plan([runner.spec for runner in supervisor.runners.values()])
        deployer = Deployer(supervisor, agents_dir, venv_root, keep_old_versions=config.keep_old_versions,
                            allow_pip_options=config.allow_pip_options)
        sampler = Sampler(supervisor, probes, agent_keys, interval=config.sample_interval)
        server = cls(config, agents_dir, logs_dir, supervisor, deployer, client, probes, found, agent_keys, feed,
                     sampler, listeners, StateFile(home / STATE_FILE_NAME), Lease(factory.lease), run_dir, factory,
                     hosts, token_file)
        deps.changed = hosts.deps.changed = server.save_state
        deps.on_state = server._on_state
        return server

    def context(self) -> DeployContext:
        return DeployContext(self.supervisor, self.deployer, self.config, self.logs_dir, self.client,
                             sampler=self.sampler, agent_keys=self.agent_keys, probes=self.probes, feed=self.feed,
                             model_hosts=self.model_hosts)

    def request_restart(self, stop: asyncio.Event) -> None:
        """``atoll restart-server`` / SIGHUP: drain the front door, leave the agents running, and
        let the caller re-execute (``atoll.deploy.cli``)."""
        logger.info("restart requested: draining the front door; agents keep running")
        self.restarting = True
        stop.set()

    async def run(self, stop: asyncio.Event, *, on_ready: Callable[[str], Awaitable[None]] | None = None,
                  sock: socket.socket | None = None) -> None:
        """Serve until ``stop`` is set, then stop every agent (SIGTERM -> grace -> SIGKILL), or
        after ``request_restart`` leave them running and keep ``sock`` open for the successor."""
        sock = sock or bind_api_socket(self.config)
        port = sock.getsockname()[1]
        self.gate = DrainGate(create_app(self.context()))
        tls = tls_options(self.config.tls_cert, self.config.tls_key, where="deployment config")
        # ws="none": no route of the deployment server is a WebSocket, and uvicorn's default ("auto")
        # imports the websockets library (~0.6 MB of the supervisor's budgeted memory) to serve them.
        server = QuietServer(Config(self.gate, log_level="warning", ws="none",
                                    lifespan="off", access_log=False, **UVICORN_OPTIONS, **tls,
                                    timeout_graceful_shutdown=math.ceil(self.config.drain_timeout)))
        url = f"{'https' if tls else 'http'}://{self.config.bind_host}:{port}"
        self._claim_home(url)
        self.lease.renew()
        housekeeping: asyncio.Task[None] | None = None
        serving: asyncio.Task[None] | None = None
        if not self.config.loopback_only:
            logger.warning("listening on %s beyond loopback: the front door passes requests through, so "
                           "agents without [server] api_keys are open to anyone who can reach it", url)
        sampling = asyncio.create_task(self.sampler.run(stop), name="dashboard-samples")
        try:
            # Adopt first: a request waiting in the socket's queue then finds its agent supervised.
            await self.adopt()
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            self.save_state()
            housekeeping = asyncio.create_task(self._housekeep())
            if not await _unless_stopped(self.supervisor.start_all(), stop):
                return  # SIGTERM/SIGINT while agents were still settling: stop them now (finally)
            self.state.server["ready"] = True
            self.save_state()
            if on_ready is not None:
                await on_ready(url)
            await stop.wait()
        finally:
            await self._shut_down(server, serving, housekeeping, sampling, sock)

    def _claim_home(self, url: str) -> None:
        """Own the state file, unless another live deployment server does: then keep no state
        (nothing to adopt, nothing adoptable) and a lease of our own."""
        other = other_live_server(read_state(self.state.path), _RUNNING_HERE)
        _RUNNING_HERE.add(self.instance)
        if other is not None:
            logger.warning("another deployment server (pid %s) runs with this ATOLL_HOME: this one keeps no "
                           "state file, so its agents cannot be adopted after a crash", other)
            self.state.enabled = False
            self.lease.path = self.factory.lease = self.run_dir / f"lease-{os.getpid()}"
        self.state.server = {"pid": os.getpid(), "instance": self.instance,
                             "create_time": psutil.Process().create_time(), "url": url,
                             "agents_dir": str(self.agents_dir), "started": time.time(),
                             "atoll_version": __version__}

    async def _shut_down(self, server: Server, serving: asyncio.Task[None] | None,
                         housekeeping: asyncio.Task[None] | None, sampling: asyncio.Task[None],
                         sock: socket.socket) -> None:
        if housekeeping is not None:
            housekeeping.cancel()
        if self._rolling is not None:  # a rollout cut short stops its new version; the old one serves on
            self._rolling.cancel()
            await asyncio.gather(self._rolling, return_exceptions=True)
        self.feed.close()  # the dashboard's live streams end, so the front door can drain
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
        if self.restarting:
            self.front_door = sock.dup()  # uvicorn closes ``sock``; the successor gets this copy
            await self._drain_front_door(server)
        server.should_exit = True
        if serving is not None:
            with contextlib.suppress(Exception):
                await serving  # relays drain (drain_timeout) while the agents are still supervised
        app: Any = self.gate.app  # the Starlette app inside the drain gate
        await app.state.mcp.aclose()  # the front door's /mcp sessions, if it was used
        if self._stopping_strays is not None:
            if self.restarting:  # the successor finds them again
                self._stopping_strays.cancel()
            await asyncio.gather(self._stopping_strays, return_exceptions=True)
        if self.restarting:
            self.lease.renew()
            self.save_state()
            self.state.enabled = False  # detached runners have no process: this record is final
            await self.supervisor.detach_all()
            await self.model_hosts.detach_all()
        else:
            await self.supervisor.stop_all()
            await self.model_hosts.stop_all()  # after the agents: their last requests may still need it
            self.listeners.close()
            self.state.clear()
        await self.client.aclose()
        await self.probes.aclose()
        sock.close()
        _RUNNING_HERE.discard(self.instance)

    async def _drain_front_door(self, server: Server) -> None:
        """Before a re-exec: stop accepting (new connections wait in the socket's queue for the
        successor), answer with ``Connection: close`` so keep-alive clients reconnect rather than
        meet a connection closed under them, and wait for the open connections (``drain_timeout``)."""
        self.gate.draining = True
        for listener in getattr(server, "servers", []):
            listener.close()
        deadline = time.monotonic() + self.config.drain_timeout
        # uvicorn's connection set has no event to wait on: poll it.
        while server.server_state.connections and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def adopt(self) -> None:
        """Adopt the agents (and model hosts) a previous deployment server left running, stop the
        ones it cannot; then start the hosts adopted agents need and no host was adopted for."""
        # Both read before anything changes: every state change rewrites the state file.
        hosts = read_records(self.state.path, "model_hosts") if self.state.enabled else {}
        records = read_records(self.state.path) if self.state.enabled else {}
        self.model_hosts.claim_ports(hosts)
        for record in records.values():  # what an adopted process runs, not what its folder holds now
            if record.checksum:
                self._checksums[(record.pid, record.create_time)] = record.checksum
        if hosts:
            await self._reconcile(self.model_hosts, hosts, "model host")
        adopted = await self._reconcile(self.supervisor, records, "agent") if records else []
        if self.state.enabled:  # before anything is spawned: what runs with our lease now is adopted or a stray
            supervised = {runner.proc.pid for runner in [*self.supervisor.runners.values(),
                                                         *self.model_hosts.runners.values()] if runner.proc}
            if found := strays(self.lease.path, supervised):
                grace = self.config.drain_timeout + self.config.stop_timeout  # as an old version's drain
                self._stopping_strays = asyncio.create_task(stop_strays(found, grace), name="stop-strays")
        self.model_hosts.start_for([self.supervisor.runners[name].spec for name in adopted])
        if changed := self._changed_since(adopted, records):
            self._rolling = asyncio.create_task(self._roll_over(changed), name="roll-changed-agents")

    def _changed_since(self, adopted: list[str], records: dict[str, AgentRecord]) -> list[str]:
        """The adopted agents whose folder no longer holds the files their process was started from."""
        changed = []
        for name in adopted:
            recorded = records[name].checksum
            if recorded and recorded != folder_checksum(self.supervisor.runners[name].spec.folder):
                logger.warning("agent %s: its files changed while no deployment server ran; adopted, and rolled "
                               "over to the new files without downtime", name)
                changed.append(name)
        return changed

    async def _roll_over(self, names: list[str]) -> None:
        for name in names:
            try:
                await self.supervisor.restart(name, graceful=True)
            except ManagementError as exc:  # a failed new version, or a command of the user's meanwhile
                logger.error("agent %s keeps running its previous files: %s", name, exc)

    async def _reconcile(self, supervised: Supervised, records: dict[str, AgentRecord], kind: str) -> list[str]:
        started = time.monotonic()
        result = await reconcile(supervised, records, self.listeners, self.supervisor.deps.probe,
                                 self.run_dir, stop_grace=self.config.stop_timeout)
        await asyncio.gather(*(self.supervisor.settle(supervised.runners[n]) for n in result.adopted))
        logger.info("adopted %d %s(s) in %.3f s: %s; stopped %d stale: %s", len(result.adopted), kind,
                    time.monotonic() - started, ", ".join(result.adopted) or "-", len(result.stopped),
                    ", ".join(result.stopped) or "-")
        return result.adopted

    def _on_state(self, name: str, state: str) -> None:
        self.feed.publish(name, state)
        runner = self.supervisor.runners.get(name)
        if state in (STOPPED, FAILED) and runner is not None:
            # No process will take its connections: close the stable port, so clients are refused
            # at once instead of waiting in its queue (it is bound again on the next start).
            self.listeners.release(runner.port)

    def save_state(self) -> None:
        try:
            self.state.save(self.supervisor.records(self._checksum), self.model_hosts.records())
        except OSError as exc:
            logger.error("cannot write the state file %s: %s", self.state.path, exc)

    def _checksum(self, runner: AgentRunner) -> str:
        """Of the files ``runner``'s process was started from (``records`` asks right after a spawn)."""
        proc = runner.proc
        if proc is None:
            return ""
        key = (proc.pid, proc.create_time)
        if key not in self._checksums:
            self._checksums[key] = folder_checksum(runner.spec.folder)
        return self._checksums[key]

    async def _housekeep(self) -> None:
        """Renew the lease, record the agents, rotate their logs; until cancelled."""
        interval = min(5.0, self.config.orphan_grace / 4)
        while True:
            self.lease.renew()
            self.save_state()
            running = {(proc.pid, proc.create_time) for runner in self.supervisor.runners.values()
                       if (proc := runner.proc) is not None}
            for gone in self._checksums.keys() - running:  # not during adoption: seeded before it
                del self._checksums[gone]
            for name in [*self.supervisor.runners, *self.model_hosts.runners]:
                for path in log_paths(self.logs_dir, name).values():
                    with contextlib.suppress(OSError):
                        rotate(path, max_bytes=self.config.log_max_bytes, backups=self.config.log_backups)
            await asyncio.sleep(interval)


def _model_hosts(config: DeploymentConfig, deps: RunnerDeps, ports: PortAllocator, listeners: Listeners,
                 run_dir: Path, agents: ProcessFactory, logs_dir: Path, feed: StateFeed) -> ModelHosts:
    """The model hosts, spawned by a factory of their own, supervised with the agents' settings;
    the agents' factory asks them for each agent's host address, and the dashboard's live stream
    (``feed``) hears their state changes."""
    enabled = config.share_local_models and llama_cpp_available()
    if config.share_local_models and not enabled:
        logger.info("no llama-cpp-python in %s: agents on the embedded model load their own copy", sys.executable)

    def command(spec: AgentSpec, launch: Launch) -> list[str]:
        return hosts.command(spec, launch)

    factory = ProcessFactory(logs_dir, listeners, run_dir, command_for=command, pass_env=config.pass_env,
                             orphan_grace=config.orphan_grace, env_base=agents.env_base, secrets=agents.secrets)
    host_deps = RunnerDeps(spawn=factory, probe=deps.probe, log_tail=deps.log_tail)
    hosts = ModelHosts(host_deps, ports, listeners, settings_from(config), run_dir, enabled=enabled,
                       startup_timeout=config.startup_timeout)

    def on_state(name: str, state: str) -> None:
        hosts.on_state(name, state)
        feed.publish(name, state)

    host_deps.on_state = on_state
    agents.extra_env = hosts.env_for
    return hosts


async def _unless_stopped(work: Awaitable[None], stop: asyncio.Event) -> bool:
    """Run ``work`` until it is done (True) or ``stop`` is set first (False: ``work`` cancelled)."""
    doing, stopping = asyncio.ensure_future(work), asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({doing, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not doing.done():
            doing.cancel()
        await asyncio.gather(doing, stopping, return_exceptions=True)
    if doing.cancelled():
        return False
    doing.result()  # start_all's own error, if any, as before
    return True


def _prober(client: httpx.AsyncClient) -> Probe:
    async def probe(port: int) -> Health:
        try:
            response = await client.get(f"http://127.0.0.1:{port}/health", timeout=HEALTH_PROBE_TIMEOUT,
                                        headers={PROBE_HEADER: "supervisor"})
        except httpx.HTTPError:
            return Health(ok=False)
        if response.status_code != 200:
            return Health(ok=False)
        return Health(ok=True, degraded=_degraded_reasons(response))

    return probe


def _degraded_reasons(response: httpx.Response) -> tuple[str, ...]:
    """The reasons of an agent's ``{"status": "degraded", "reasons": [...]}``; () for any other body."""
    try:
        body = response.json()
    except ValueError:
        return ()
    if not isinstance(body, dict) or body.get("status") != "degraded":
        return ()
    reasons = body.get("reasons")
    return tuple(str(r) for r in reasons) if isinstance(reasons, list) and reasons else ("degraded",)
