"""The deployment server's settings: ``~/.atoll/deployment_servers.json`` (``$ATOLL_HOME`` moves it).

The file is flat, as in ATOLL::

    {"enabled": true, "host": "localhost", "api_port": 8080, "base_port": 8100, "max_agents": 10,
     "health_check_interval": 30, "restart_on_failure": true, "max_restarts": 3,
     "auto_discover_port": true, "agents_directory": "atoll_agents",
     "admin_token": "$ATOLL_ADMIN_TOKEN",
     "remote_servers": [{"name": "prod", "host": "10.0.0.5", "port": 8080, "enabled": true,
                         "description": "...", "api_key": "$PROD_KEY", "admin_token": "$PROD_ADMIN"}]}

Fields past ATOLL's (timeouts, backoff, log rotation) have defaults and may be set in the same file.
A missing file means all defaults; a bad one is a ``ConfigError`` naming the file and the field.
Secrets (``admin_token``, a remote's ``api_key`` and ``admin_token``) may be written as ``$VAR``;
``ATOLL_ADMIN_TOKEN`` in the environment overrides the file's ``admin_token``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from atoll.config import ENV_VARS, atoll_home, describe_errors, expand_vars, read_document
from atoll.errors import ConfigError
from atoll.net import is_loopback

logger = logging.getLogger(__name__)

CONFIG_FILE_NAME = "deployment_servers.json"
STATE_FILE_NAME = "deployment_server.state.json"
ADMIN_TOKEN_ENV = ENV_VARS["ATOLL_ADMIN_TOKEN"]
#: Fields whose ``$VAR`` references are expanded (top level, then each remote); nothing else is.
SECRET_FIELDS = ("admin_token",)
REMOTE_SECRET_FIELDS = ("api_key", "admin_token")


class RemoteServer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    host: str
    port: int = Field(default=8080, gt=0, lt=65536)
    enabled: bool = True
    description: str = ""
    #: Sent as ``Authorization: Bearer`` on front-door calls to this remote (routed requests and its
    #: ``/api/tags``), in place of the caller's own header.
    api_key: str | None = Field(default=None, repr=False)
    #: The remote deployment server's admin token, sent when asking its management API (``/agents``).
    admin_token: str | None = Field(default=None, repr=False)
    #: ``agent``: a single agent server (``atoll server``, as ``atoll export k8s`` lists each agent's
    #: Service), which has no management API and serves ``/agent/{name}/...`` at its root.
    #: ``serve``: a Ray Serve ingress (``atoll export k8s --ray``'s RayService): every agent and
    #: ``/agent/{name}/...`` as on a deployment server's front door, but no management API.
    kind: Literal["deployment", "agent", "serve"] = "deployment"
    #: HTTPS with certificate verification (also chosen by writing ``host`` as ``https://...``).
    tls: bool = False
    #: PEM file of the CAs trusted for this remote instead of the system's (relative to the config
    #: file); needs ``tls``.
    ca_bundle: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _host_as_url(cls, data: Any) -> Any:
        """``host`` may be a URL: ``https://lab.example:8443`` sets ``host``, ``port`` and ``tls``."""
        if not (isinstance(data, dict) and isinstance(data.get("host"), str) and "://" in data["host"]):
            return data
        parts = urlsplit(data["host"])
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
                or parts.query or parts.username:
            raise ValueError("host: write a host name or address, or an http:// or https:// URL "
                             "with no path, query or user")
        port = parts.port or data.get("port") or (443 if parts.scheme == "https" else 80)
        return {**data, "host": parts.hostname, "port": port, "tls": parts.scheme == "https"}

    @model_validator(mode="after")
    def _bundle_needs_tls(self) -> RemoteServer:
        if self.ca_bundle is not None and not self.tls:
            raise ValueError("ca_bundle needs tls = true (or an https:// host)")
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


class DeploymentConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    enabled: bool = True
    #: Address the management API and front door bind to; agents always bind 127.0.0.1.
    host: str = "127.0.0.1"
    api_port: int = Field(default=8080, gt=0, lt=65536)
    base_port: int = Field(default=8100, gt=0, lt=65536)
    max_agents: int = Field(default=50, gt=0)
    #: Requests the front door relays to one agent at a time (streams included); past it, 429.
    max_relays_per_agent: int = Field(default=128, gt=0)
    health_check_interval: float = Field(default=10.0, gt=0)
    restart_on_failure: bool = True
    #: Restarts allowed within ``restart_window`` seconds before the agent is marked failed.
    max_restarts: int = Field(default=5, ge=0)
    auto_discover_port: bool = True
    agents_directory: str | None = None
    remote_servers: list[RemoteServer] = Field(default_factory=list)
    #: Bearer token every management endpoint but ``GET /health`` requires; when not set, one is
    #: generated into ``$ATOLL_HOME/admin_token`` (see ``admin_token.py``).
    admin_token: str | None = Field(default=None, repr=False)
    #: Browser origins allowed besides the local ones (``*``: any, with a warning); ``ATOLL_ORIGINS`` adds more.
    cors_origins: list[str] = Field(default_factory=list)
    #: Host names answered on a loopback listener besides loopback names (DNS rebinding check);
    #: ``ATOLL_ALLOWED_HOSTS`` adds more.
    allowed_hosts: list[str] = Field(default_factory=list)

    restart_window: float = Field(default=60.0, gt=0)
    startup_timeout: float = Field(default=60.0, gt=0)
    stop_timeout: float = Field(default=10.0, gt=0)
    health_failure_threshold: int = Field(default=3, ge=1)
    backoff_initial: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)
    #: Seconds of healthy running after which the backoff starts again from ``backoff_initial``.
    healthy_reset_after: float = Field(default=30.0, gt=0)
    log_max_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    log_backups: int = Field(default=3, ge=0)
    #: Seconds between the dashboard's metrics samples of each running agent (an hour of them is kept).
    sample_interval: float = Field(default=10.0, ge=1)
    #: Old versions kept per agent in .previous/, .failed/ and .deleted/ (with their sessions.db).
    keep_old_versions: int = Field(default=3, ge=0)
    #: Let an uploaded package's requirements.txt carry pip options (other indexes, --find-links,
    #: includes, editable installs, direct URLs and paths). Only this file can allow it.
    allow_pip_options: bool = False
    #: Extra environment variable names passed to agents (on top of the built-in allow-list).
    pass_env: list[str] = Field(default_factory=list)
    #: Agents with ``provider = "local"`` share one model host per model (``atoll model-host``)
    #: instead of each loading its own copy; false: each agent loads its own (as run alone).
    share_local_models: bool = True
    #: Seconds an agent outlives its deployment server before it shuts down by itself, unless a
    #: restarted deployment server adopts it meanwhile (the lease; see docs/deployment.md).
    orphan_grace: float = Field(default=60.0, gt=0)
    #: Seconds an old version may take to finish its requests and streams after a redeploy or
    #: graceful restart, and the front door its relays before ``restart-server`` (then they are cut).
    drain_timeout: float = Field(default=30.0, ge=0)
    #: Serve the management API and front door over HTTPS with this certificate and key (PEM
    #: files); both or neither. ``--tls-cert``/``--tls-key`` override them.
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def secrets(self) -> list[str]:
        """Every credential of this file: the admin token and each remote's key and token. None of
        them may reach an agent process."""
        values = [self.admin_token] + [v for r in self.remote_servers for v in (r.api_key, r.admin_token)]
        return [v for v in values if v]

    @property
    def bind_host(self) -> str:
        return "127.0.0.1" if self.host == "localhost" else self.host

    @property
    def display_host(self) -> str:
        return "localhost" if self.host in ("127.0.0.1", "localhost", "::1") else self.host

    @property
    def loopback_only(self) -> bool:
        return is_loopback(self.bind_host)


def config_path() -> Path:
    return atoll_home() / CONFIG_FILE_NAME


def state_path() -> Path:
    """Where a running deployment server writes its pid and URL, for ``atoll status``."""
    return atoll_home() / STATE_FILE_NAME


def load_deployment_config(path: Path | None = None) -> DeploymentConfig:
    path = (path or config_path()).expanduser().absolute()  # errors name the file by its absolute path
    if not path.is_file():
        return with_env_overrides(DeploymentConfig())
    data = _expand_secrets(read_document(path), str(path))
    try:
        config = DeploymentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc), path=str(path)) from exc
    for key in config.model_extra or {}:
        logger.warning("%s: unknown key %s ignored", path, key)
    return with_env_overrides(_files_beside(config, path))


def _files_beside(config: DeploymentConfig, path: Path) -> DeploymentConfig:
    """Relative file names in the config (TLS files, CA bundles) are relative to the config file;
    a CA bundle that is not there is an error naming its field."""
    def beside(value: Path | None) -> Path | None:
        return None if value is None or value.is_absolute() else path.parent / value.expanduser()

    remotes = []
    for index, remote in enumerate(config.remote_servers):
        bundle = beside(remote.ca_bundle) or remote.ca_bundle
        if bundle is not None and not bundle.is_file():
            raise ConfigError(f"{bundle} is not a readable file", path=str(path),
                              field=f"remote_servers.{index}.ca_bundle")
        remotes.append(remote.model_copy(update={"ca_bundle": bundle}))
    return config.model_copy(update={"remote_servers": remotes,
                                     "tls_cert": beside(config.tls_cert) or config.tls_cert,
                                     "tls_key": beside(config.tls_key) or config.tls_key})


def with_env_overrides(config: DeploymentConfig) -> DeploymentConfig:
    """The environment beats the file: ``ATOLL_ADMIN_TOKEN`` replaces ``admin_token``."""
    token = ADMIN_TOKEN_ENV.get()
    return config.model_copy(update={"admin_token": token}) if token else config


def _expand_secrets(data: dict[str, Any], path: str) -> dict[str, Any]:
    try:
        for key in SECRET_FIELDS:
            if isinstance(data.get(key), str):
                data[key] = expand_vars(data[key], where=key)
        remotes = data.get("remote_servers")
        for index, remote in enumerate(remotes if isinstance(remotes, list) else []):
            for key in REMOTE_SECRET_FIELDS:
                if isinstance(remote, dict) and isinstance(remote.get(key), str):
                    remote[key] = expand_vars(remote[key], where=f"remote_servers.{index}.{key}")
    except ConfigError as exc:
        raise ConfigError(str(exc), path=path) from exc
    return data


def resolve_agents_dir(cli_value: str | None, config: DeploymentConfig, cwd: Path) -> Path:
    """``--agents-dir``, else ``agents_directory`` from the file, else ``./atoll_agents``."""
    chosen = cli_value or config.agents_directory or "atoll_agents"
    path = Path(chosen).expanduser()
    return path if path.is_absolute() else (cwd / path)
