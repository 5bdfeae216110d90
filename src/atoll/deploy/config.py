"""The deployment server's settings: ``~/.atoll/deployment_servers.json`` (``$ATOLL_HOME`` moves it).

The file is flat, as in ATOLL::

    {"enabled": true, "host": "localhost", "api_port": 8080, "base_port": 8100, "max_agents": 10,
     "health_check_interval": 30, "restart_on_failure": true, "max_restarts": 3,
     "auto_discover_port": true, "agents_directory": "atoll_agents",
     "remote_servers": [{"name": "prod", "host": "10.0.0.5", "port": 8080, "enabled": true,
                         "description": "..."}]}

Fields past ATOLL's (timeouts, backoff, log rotation) have defaults and may be set in the same file.
A missing file means all defaults; a bad one is a ``ConfigError`` naming the file and the field.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from atoll.config import atoll_home, read_document
from atoll.errors import ConfigError

logger = logging.getLogger(__name__)

CONFIG_FILE_NAME = "deployment_servers.json"
STATE_FILE_NAME = "deployment_server.state.json"


class RemoteServer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    host: str
    port: int = Field(default=8080, gt=0, lt=65536)
    enabled: bool = True
    description: str = ""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class DeploymentConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    enabled: bool = True
    #: Address the management API and front door bind to; agents always bind 127.0.0.1.
    host: str = "127.0.0.1"
    api_port: int = Field(default=8080, gt=0, lt=65536)
    base_port: int = Field(default=8100, gt=0, lt=65536)
    max_agents: int = Field(default=50, gt=0)
    health_check_interval: float = Field(default=10.0, gt=0)
    restart_on_failure: bool = True
    #: Restarts allowed within ``restart_window`` seconds before the agent is marked failed.
    max_restarts: int = Field(default=5, ge=0)
    auto_discover_port: bool = True
    agents_directory: str | None = None
    remote_servers: list[RemoteServer] = Field(default_factory=list)

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
    #: Extra environment variable names passed to agents (on top of the built-in allow-list).
    pass_env: list[str] = Field(default_factory=list)

    @property
    def bind_host(self) -> str:
        return "127.0.0.1" if self.host == "localhost" else self.host

    @property
    def display_host(self) -> str:
        return "localhost" if self.host in ("127.0.0.1", "localhost", "::1") else self.host


def config_path() -> Path:
    return atoll_home() / CONFIG_FILE_NAME


def state_path() -> Path:
    """Where a running deployment server writes its pid and URL, for ``atoll status``."""
    return atoll_home() / STATE_FILE_NAME


def load_deployment_config(path: Path | None = None) -> DeploymentConfig:
    path = path or config_path()
    if not path.is_file():
        return DeploymentConfig()
    data = read_document(path)
    try:
        config = DeploymentConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(part) for part in err["loc"])
        raise ConfigError(err["msg"], path=str(path), field=field) from exc
    for key in config.model_extra or {}:
        logger.warning("%s: unknown key %s ignored", path, key)
    return config


def resolve_agents_dir(cli_value: str | None, config: DeploymentConfig, cwd: Path) -> Path:
    """``--agents-dir``, else ``agents_directory`` from the file, else ``./atoll_agents``."""
    chosen = cli_value or config.agents_directory or "atoll_agents"
    path = Path(chosen).expanduser()
    return path if path.is_absolute() else (cwd / path)
