"""Every setting atoll reads: the agent file schema, the Ollama config file, ``mcp.json`` and the
environment. This is the one module that reads ``os.environ``.

Precedence for the LLM settings, highest first::

    agent file [llm]  >  ~/.ollama_server/.ollama_config.json  >  environment  >  defaults

With no LLM configured anywhere the provider is ``local``: the embedded SmolLM2 model.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from atoll.errors import ConfigError

logger = logging.getLogger(__name__)


# ---- environment variables: declared once, with type, default and meaning ---------------------


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str | None
    description: str

    def get(self) -> str | None:
        value = os.environ.get(self.name)
        return value if value not in (None, "") else self.default


ENV_VARS: dict[str, EnvVar] = {
    v.name: v
    for v in (
        EnvVar("OLLAMA_HOST", None, "Upstream Ollama server for the `ollama` provider (host[:port] or URL)."),
        EnvVar("ATOLL_LLM_PROVIDER", None, "LLM provider when no file sets one: local, ollama, openai."),
        EnvVar("ATOLL_LLM_MODEL", None, "Model name for the provider when no file sets one."),
        EnvVar("ATOLL_LLM_BASE_URL", None, "Upstream base URL when no file sets one."),
        EnvVar("ATOLL_API_KEYS", None, "Comma-separated API keys clients must send as Bearer tokens."),
        EnvVar("ATOLL_OLLAMA_CONFIG", None, "Path of the Ollama config file "
               "(default ~/.ollama_server/.ollama_config.json)."),
        EnvVar("ATOLL_HOME", None, "Directory for atoll's own state (default ~/.atoll)."),
        EnvVar("ATOLL_SESSION_URL", None, "Redis URL (redis://HOST:PORT/DB) for sessions: agents whose file "
               "sets no session_store keep their sessions there; also the session_url of session_store = \"redis\"."),
        EnvVar("ATOLL_ORIGINS", None, "Comma-separated browser origins allowed besides the local ones "
               "(both servers; '*' allows any page)."),
        EnvVar("ATOLL_ALLOWED_HOSTS", None, "Comma-separated host names a server on loopback answers to "
               "besides loopback names (DNS rebinding check; '*' turns it off)."),
        EnvVar("ATOLL_API_KEY", None, "With --mcp-stdio: the API key the stdio client acts as (one of the "
               "agent's keys), so it shares sessions with HTTP clients using that key."),
        EnvVar("ATOLL_ADMIN_TOKEN", None, "Bearer token the deployment server's management API requires "
               "(overrides admin_token in deployment_servers.json)."),
        EnvVar("ATOLL_MODEL_HOST", None, "URL of a model host (atoll model-host) that agents with provider "
               "\"local\" use instead of loading the model themselves; set by the deployment server."),
        EnvVar("ATOLL_MODEL_HOST_TOKEN_FILE", None, "File holding the agent's token for ATOLL_MODEL_HOST; set "
               "by the deployment server."),
        EnvVar("ATOLL_DEPLOY_AGENT_KEY", None, "Set by the deployment server for each agent it runs: a key "
               "it reaches the agent with (dashboard), accepted besides [server] api_keys when those are set."),
    )
}


def env(name: str) -> str | None:
    return ENV_VARS[name].get()


def atoll_home() -> Path:
    return Path(env("ATOLL_HOME") or Path.home() / ".atoll")


# ---- $VAR / ${VAR} / ${VAR:-default} expansion ----------------------------------------------

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand_vars(value: Any, *, where: str = "", environ: Mapping[str, str] | None = None) -> Any:
    """Expand environment references in every string of ``value`` (recursively).

    ``$$`` is a literal ``$``. An unset variable without a default is an error that names it.
    ``environ`` replaces ``os.environ`` (the Kubernetes export checks files with stand-in values).
    """
    source = os.environ if environ is None else environ
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name = match.group(1) or match.group(3)
            default = match.group(2)
            found = source.get(name)
            if found is not None:
                return found
            if default is not None:
                return default
            raise ConfigError(f"environment variable ${name} is not set", field=where or None)

        return _VAR.sub(repl, value)
    if isinstance(value, dict):
        return {k: expand_vars(v, where=f"{where}.{k}" if where else str(k), environ=environ)
                for k, v in value.items()}
    if isinstance(value, list):
        return [expand_vars(v, where=f"{where}[{i}]", environ=environ) for i, v in enumerate(value)]
    return value


def referenced_vars(value: Any) -> dict[str, bool]:
    """The environment variables ``value``'s strings refer to (``$VAR``, ``${VAR}``, ``${VAR:-d}``,
    VS Code's ``${env:VAR}``), each with whether the reference has a default."""
    found: dict[str, bool] = {}
    if isinstance(value, str):
        for match in _VAR.finditer(_VSCODE_ENV.sub(r"${\1}", value)):
            name = match.group(1) or match.group(3)
            if name:
                found[name] = found.get(name, True) and match.group(2) is not None
    elif isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            for name, has_default in referenced_vars(item).items():
                found[name] = found.get(name, True) and has_default
    return found


# ---- the agent file schema ------------------------------------------------------------------


class _Section(BaseModel):
    """Sections keep unknown keys (with a warning) but reject wrong types."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


ProviderName = str  # "local" | "ollama" | "openai" | "module:Class"


class AgentSection(_Section):
    name: str = "atoll"
    version: str = "1.0.0"
    description: str = ""
    capabilities: list[str] = Field(default_factory=list)
    #: Tool-calling rounds before the loop gives up with a final answer saying so.
    max_iterations: int = Field(default=10, ge=1, le=100)
    #: Seconds one tool call may take before its result becomes a timeout error.
    tool_timeout: float = Field(default=60.0, gt=0)
    #: The same call (tool and arguments) this many times in one turn stops the loop with an answer.
    max_repeated_calls: int = Field(default=3, ge=2, le=100)
    #: Longer tool results are cut to this many characters, with a marker saying how much was cut.
    max_tool_result_chars: int = Field(default=20_000, ge=100)
    #: How tool calls show in the reply text: "auto" (Open WebUI gets "details", others "off").
    show_tool_activity: Literal["auto", "details", "text", "off"] = "auto"
    #: Tool-name globs that need a person's approval, whatever server or child agent offers them.
    require_approval: list[str] = Field(default_factory=list)
    #: Seconds a pending approval waits for its answer.
    approval_timeout: float = Field(default=600.0, gt=0)

    @field_validator("name")
    @classmethod
    def _name_is_model_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)?", value):
            raise ValueError("must be a model name: letters, digits, '.', '_', '-' (no spaces or ':')")
        return value


class LLMConfig(_Section):
    provider: ProviderName | None = None
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    context_length: int | None = Field(default=None, gt=0)
    request_timeout: float = Field(default=120.0, gt=0)
    system_prompt: str | None = None
    model_path: str | None = None
    #: Backend-specific settings passed through to the provider untouched.
    extra: dict[str, Any] = Field(default_factory=dict)


class McpServerConfig(_Section):
    """One MCP server: stdio (``command``) or remote (``url``).

    Accepts the VS Code (``type``) and Claude Desktop / Cursor (``transport`` or nothing) spellings.
    """

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    type: Literal["stdio", "http", "sse"] | None = Field(default=None, alias="transport")
    timeout: float = Field(default=30.0, gt=0)
    enabled: bool = True
    description: str = ""
    #: ``true`` (every tool of this server) or tool-name globs that need a person's approval.
    require_approval: bool | list[str] = False

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        kind = data.pop("type", None) or data.get("transport")
        if "httpUrl" in data and "url" not in data:
            data["url"] = data.pop("httpUrl")
            kind = kind or "http"
        if "disabled" in data and "enabled" not in data:
            data["enabled"] = not data.pop("disabled")
        if isinstance(kind, str):
            kind = kind.lower().replace("_", "-")
            kind = {"streamable-http": "http", "streamablehttp": "http"}.get(kind, kind)
        if kind is None:
            if data.get("command"):
                kind = "stdio"
            elif isinstance(data.get("url"), str):
                kind = "sse" if re.search(r"/sse(/|\?|&|$)", data["url"]) else "http"
        data["transport"] = kind
        return data

    @model_validator(mode="after")
    def _has_target(self) -> McpServerConfig:
        if self.type == "stdio" and not self.command:
            raise ValueError("a stdio server needs 'command'")
        if self.type in ("http", "sse") and not self.url:
            raise ValueError(f"a {self.type} server needs 'url'")
        if self.type is None:
            raise ValueError("needs 'command' (stdio) or 'url' (http/sse)")
        return self


class SubAgentConfig(_Section):
    """Another agent as a tool: an atoll agent server (``url``, over its Ollama API) or any A2A
    agent (``a2a_url``: where its agent card is, ``/.well-known/agent-card.json`` under it)."""

    url: str | None = None
    a2a_url: str | None = None
    auth_token: str | None = None
    description: str = ""
    #: The model name to ask for on the child (default: the child's own, from its /api/tags).
    model: str | None = None
    timeout: float = Field(default=120.0, gt=0)
    enabled: bool = True
    #: ``true``: every call to this child agent needs a person's approval (or tool-name globs).
    require_approval: bool | list[str] = False

    @model_validator(mode="after")
    def _one_address(self) -> SubAgentConfig:
        if (self.url is None) == (self.a2a_url is None):
            raise ValueError("needs either 'url' (an atoll agent server) or 'a2a_url' (an A2A agent), not both")
        return self


_REDIS_URL = re.compile(r"(rediss?|unix)://")

class ServerSection(_Section):
    session_timeout_minutes: float = Field(default=30.0, gt=0)
    session_store: Literal["sqlite", "memory", "redis"] = "sqlite"
    #: Redis for ``session_store = "redis"`` (``redis://[:PASSWORD@]HOST:PORT/DB``, ``rediss://`` for TLS).
    session_url: str | None = None
    #: SQLite file for sessions, relative to the agent file; unset: $ATOLL_HOME/sessions/<agent>.db
    #: (see atoll.sessions.paths), so sessions outlive a redeploy of the agent's folder.
    session_db: str | None = None
    session_cleanup_interval_s: float = Field(default=60.0, gt=0)
    api_keys: list[str] = Field(default_factory=list)
    mcp_connect_timeout: float = Field(default=10.0, gt=0)
    #: Seconds before a server that failed at start is tried again (doubling, at most 10 minutes).
    mcp_retry_interval: float = Field(default=30.0, gt=0)
    drain_timeout: float = Field(default=10.0, ge=0)
    #: Browser origins allowed besides the local ones (``*``: any page, with a start-up warning).
    cors_origins: list[str] = Field(default_factory=list)
    #: Host names answered on a loopback listener besides loopback names (DNS rebinding check).
    allowed_hosts: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    request_timeout: float = Field(default=600.0, gt=0)
    rate_limit_per_minute: int | None = Field(default=None, gt=0)
    #: The window ``rate_limit_per_minute`` counts over (60 s; shorter windows are for tests).
    rate_limit_window_s: float = Field(default=60.0, gt=0)
    max_concurrent_generations: int | None = Field(default=None, gt=0)
    #: Requests deeper in a chain of agents delegating to each other are refused (508), and this
    #: agent's own delegations stop there (an error result its LLM sees).
    max_delegation_depth: int = Field(default=4, ge=1, le=100)
    #: Re-export the agent's own tools over MCP (``/mcp``, ``--mcp-stdio``): all (true) or those
    #: whose names match one of these globs; the agent's own tool is always there.
    mcp_expose_tools: bool | list[str] = False
    #: Serve HTTPS with this certificate and key (PEM files, relative to the agent file); both or
    #: neither. ``--tls-cert``/``--tls-key`` override them. Ignored under the deployment server,
    #: whose front door reaches its agents over loopback (it serves TLS itself).
    tls_cert: str | None = None
    tls_key: str | None = None
    #: Proxies whose ``X-Forwarded-For``/``-Proto`` name the client (addresses or networks; ``*``
    #: any). None by default: a bare forwarded header is never believed.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("session_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not _REDIS_URL.match(value):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value


class RayActorOptions(BaseModel):
    """Ray's options for each replica of an agent, the ones Serve's config accepts (its
    ``RayActorOptionsSchema``); any other key is an error here rather than at deploy time."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: float | None = Field(default=None, ge=0)
    num_gpus: float | None = Field(default=None, ge=0)
    #: Bytes of heap memory Ray reserves for each replica.
    memory: float | None = Field(default=None, ge=0)
    #: Custom resources (``{ "special_hardware" = 1 }``).
    resources: dict[str, float] = Field(default_factory=dict)
    accelerator_type: str | None = None


class DeploymentSection(_Section):
    auto_start: bool = True
    port: int | None = Field(default=None, gt=0, lt=65536)
    startup_timeout: float = Field(default=60.0, gt=0)
    env: dict[str, str] = Field(default_factory=dict)
    # Copies of the agent where a backend runs several (Kubernetes export, Ray): a fixed number, or
    # autoscaling between min_replicas and max_replicas. The local deployment server runs one.
    replicas: int = Field(default=1, ge=1)
    min_replicas: int | None = Field(default=None, ge=1)
    max_replicas: int | None = Field(default=None, ge=1)
    #: Ray Serve's autoscaling target: requests in progress per replica.
    target_ongoing_requests: float | None = Field(default=None, gt=0)
    #: Kubernetes' autoscaling target: average CPU use per pod, percent of its CPU request.
    target_cpu_percent: int = Field(default=70, gt=0, le=100)
    #: Ray's actor options for each replica (num_cpus, memory, resources, ...).
    ray_actor_options: RayActorOptions = Field(default_factory=RayActorOptions)

    @model_validator(mode="after")
    def _one_way_to_scale(self) -> DeploymentSection:
        if self.autoscaling and "replicas" in self.model_fields_set:
            raise ValueError("set either replicas or min_replicas/max_replicas, not both")
        if self.autoscaling and self.max_replicas is None:
            raise ValueError("autoscaling needs max_replicas (min_replicas defaults to 1)")
        if self.min_replicas and self.max_replicas and self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})")
        return self

    @property
    def autoscaling(self) -> bool:
        return self.min_replicas is not None or self.max_replicas is not None

    @property
    def most_replicas(self) -> int:
        """The most copies that may run at once."""
        return self.max_replicas if self.max_replicas is not None else self.replicas


class ResourcesSection(_Section):
    max_memory_mb: int | None = Field(default=None, gt=0)
    max_cpu_percent: float | None = Field(default=None, gt=0)


KNOWN_SECTIONS = ("agent", "llm", "mcp_servers", "sub_agents", "server", "deployment", "resources")


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    agent: AgentSection = Field(default_factory=AgentSection)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    mcp_servers: dict[str, McpServerConfig] = Field(default_factory=dict)
    sub_agents: dict[str, SubAgentConfig] = Field(default_factory=dict)
    server: ServerSection = Field(default_factory=ServerSection)
    deployment: DeploymentSection = Field(default_factory=DeploymentSection)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)

    #: Where the file was read from (None for the built-in default agent).
    source: Path | None = Field(default=None, exclude=True)

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path


# ---- reading files --------------------------------------------------------------------------


def _describe_error(err: Any, variables: Mapping[tuple[Any, ...], str] | None = None) -> str:
    """``field: problem, got 'value'``; for a field written as ``$VAR`` the variable is named and its
    value (perhaps a secret) never shown."""
    loc = ".".join(str(part) for part in err["loc"])
    got = err.get("input")
    written = (variables or {}).get(tuple(err["loc"]))
    if written is not None:
        shown = f" (the value of {written})"
    else:
        shown = "" if isinstance(got, dict | list) or got is None else f", got {got!r}"
    return f"{loc}: {err['msg']}{shown}"


def describe_errors(exc: ValidationError, variables: Mapping[tuple[Any, ...], str] | None = None) -> str:
    """Every validation error at once, one after another: ``field: problem; field: problem``."""
    return "; ".join(_describe_error(err, variables) for err in exc.errors())


def variable_fields(value: Any, where: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], str]:
    """Where ``$VAR`` references are written in a document (before expansion): path -> the text."""
    if isinstance(value, str):
        return {where: value} if _VAR.search(value) else {}
    if isinstance(value, dict):
        return {p: t for k, v in value.items() for p, t in variable_fields(v, (*where, k)).items()}
    if isinstance(value, list):
        return {p: t for i, v in enumerate(value) for p, t in variable_fields(v, (*where, i)).items()}
    return {}


def read_document(path: Path) -> dict[str, Any]:
    """Parse a TOML or JSON file into a dict, turning syntax errors into ``ConfigError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", path=str(path)) from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                          path=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", path=str(path)) from exc
    if not isinstance(data, dict):
        raise ConfigError("expected a table/object at the top level", path=str(path))
    return data


def _warn_unknown(data: dict[str, Any], path: Path) -> None:
    for key in data:
        if key not in KNOWN_SECTIONS:
            logger.warning("%s: unknown section [%s] ignored", path, key)


def _warn_unknown_keys(config: AgentConfig, path: Path) -> None:
    for section in ("agent", "llm", "server", "deployment", "resources"):
        extra = getattr(config, section).model_extra or {}
        for key in extra:
            logger.warning("%s: unknown key %s.%s ignored", path, section, key)
    tables: dict[str, dict[str, McpServerConfig] | dict[str, SubAgentConfig]] = {
        "mcp_servers": config.mcp_servers, "sub_agents": config.sub_agents}
    for table, entries in tables.items():
        for name, entry in entries.items():  # a typo (`arg = [...]`) would otherwise run without it
            for key in entry.model_extra or {}:
                logger.warning("%s: unknown key %s.%s.%s ignored", path, table, name, key)


def load_agent_file(path: Path, *, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Read and validate ``agent.toml`` / ``agent.json``. Errors name the file and the field."""
    path = path.expanduser().resolve()
    data = read_document(path)
    _warn_unknown(data, path)
    variables = variable_fields(data)
    try:
        data = expand_vars(data, environ=environ)
    except ConfigError as exc:
        raise ConfigError(exc.message, path=str(path)) from exc
    if "agent" not in data or not isinstance(data.get("agent"), dict) or "name" not in data["agent"]:
        data.setdefault("agent", {})
        if isinstance(data["agent"], dict):
            data["agent"].setdefault("name", _name_from_folder(path.parent))
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, variables), path=str(path)) from exc
    config.source = path
    _warn_unknown_keys(config, path)
    return config


def _name_from_folder(folder: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name).strip("-.")
    return name or "atoll-agent"


_VSCODE_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_VSCODE_INPUT = re.compile(r"\$\{input:([^}]*)\}")


def _vscode_variables(value: Any, *, path: Path, where: str = "") -> Any:
    """VS Code's forms: ``${env:NAME}`` is ``${NAME}``, ``${workspaceFolder}`` the file's project
    folder, ``${userHome}`` the home folder; ``${input:id}`` prompts a person, which a server cannot."""
    if isinstance(value, str):
        if found := _VSCODE_INPUT.search(value):
            raise ConfigError(f"${{input:{found.group(1)}}} asks a person for a value, which a server cannot; "
                              "use an environment variable instead", path=str(path), field=where or None)
        folder = path.parent.parent if path.parent.name == ".vscode" else path.parent
        value = value.replace("${workspaceFolder}", str(folder)).replace("${userHome}", str(Path.home()))
        return _VSCODE_ENV.sub(r"${\1}", value)
    if isinstance(value, dict):
        return {k: _vscode_variables(v, path=path, where=f"{where}.{k}" if where else str(k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_vscode_variables(v, path=path, where=f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def load_mcp_json(path: Path, *, environ: Mapping[str, str] | None = None) -> dict[str, McpServerConfig]:
    """Servers from an ``mcp.json`` in either the ``mcpServers`` or the VS Code ``servers`` format.

    ``timeout`` there is in milliseconds, as Claude's and fastmcp's files write it (seconds in
    ``agent.toml``).
    """
    written = _vscode_variables(read_document(path), path=path)
    try:
        data = expand_vars(written, environ=environ)
    except ConfigError as exc:
        raise ConfigError(exc.message, path=str(path)) if exc.path is None else exc from exc
    servers = _servers_in(data)
    if servers is None:
        return {}
    if not isinstance(servers, dict):
        raise ConfigError("expected an object of servers", path=str(path), field="mcpServers")
    written_servers = _servers_in(written)
    result: dict[str, McpServerConfig] = {}
    for name, entry in servers.items():
        if isinstance(entry, dict) and isinstance(entry.get("timeout"), int | float):
            entry = {**entry, "timeout": entry["timeout"] / 1000}
        try:
            result[name] = McpServerConfig.model_validate(entry)
        except ValidationError as exc:
            variables = variable_fields(written_servers[name]) if isinstance(written_servers, dict) else {}
            raise ConfigError(_describe_error(exc.errors()[0], variables), path=str(path),
                              field=f"servers.{name}") from exc
    return result


def _servers_in(data: dict[str, Any]) -> Any:
    """The servers object of an ``mcp.json``: ``mcpServers``, ``servers``, or the top level itself."""
    servers = data.get("mcpServers", data.get("servers"))
    if servers is None and data and all(isinstance(v, dict) and ("command" in v or "url" in v)
                                        for v in data.values()):
        return data
    return servers


@dataclass
class OllamaFileConfig:
    """ATOLL's ``~/.ollama_server/.ollama_config.json``: ``base_url`` has no port; ``port`` is separate."""

    base_url: str | None = None
    model: str | None = None
    request_timeout: float | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None


def ollama_config_path() -> Path:
    return Path(env("ATOLL_OLLAMA_CONFIG") or Path.home() / ".ollama_server" / ".ollama_config.json")


def load_ollama_config(path: Path | None = None) -> OllamaFileConfig | None:
    path = path or ollama_config_path()
    if not path.is_file():
        return None
    data = read_document(path)
    fields: dict[str, tuple[type, ...]] = {
        "base_url": (str,), "port": (int,), "model": (str,), "request_timeout": (int, float),
        "max_tokens": (int,), "temperature": (int, float), "top_p": (int, float),
    }
    for key, types in fields.items():
        value = data.get(key)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            expected = " or ".join(t.__name__ for t in types)
            raise ConfigError(f"expected {expected}, got {value!r}", path=str(path), field=key)
    base_url = data.get("base_url")
    if base_url and data.get("port"):
        base_url = f"{base_url.rstrip('/')}:{data['port']}"
    return OllamaFileConfig(
        base_url=base_url, model=data.get("model"), request_timeout=data.get("request_timeout"),
        max_tokens=data.get("max_tokens"), temperature=data.get("temperature"), top_p=data.get("top_p"),
    )


def normalise_ollama_host(value: str) -> str:
    """The Ollama server's base URL. A URL (``scheme://...``) is kept as written, path included
    (a trailing ``/`` dropped); only an ``OLLAMA_HOST``-style ``host[:port][/path]`` gets ``http://``,
    the default port 11434, and ``127.0.0.1`` for an empty or ``0.0.0.0`` host."""
    value = value.strip().rstrip("/")
    if "://" in value:
        return value
    host_port, slash, path = value.partition("/")
    if host_port.startswith("["):  # [IPv6]:port
        host, _, port = host_port[1:].partition("]")
        host, port = f"[{host}]", port.removeprefix(":")
    else:
        host, _, port = host_port.partition(":")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    return f"http://{host}:{port or '11434'}{slash}{path}"


def resolve_llm(file_llm: LLMConfig, ollama_file: OllamaFileConfig | None) -> LLMConfig:
    """Apply the precedence: agent file > Ollama config file > environment > defaults."""
    llm = file_llm.model_copy(deep=True)
    env_provider = env("ATOLL_LLM_PROVIDER")
    env_host = env("OLLAMA_HOST")
    if llm.provider is None:
        if llm.model_path:
            llm.provider = "local"
        elif llm.base_url or llm.model or ollama_file is not None:
            llm.provider = "ollama"
        elif env_provider:
            llm.provider = env_provider
        elif env_host or env("ATOLL_LLM_BASE_URL") or env("ATOLL_LLM_MODEL"):
            llm.provider = "ollama"
        else:
            llm.provider = "local"
    if llm.provider == "ollama" and ollama_file is not None:
        llm.base_url = llm.base_url or ollama_file.base_url
        llm.model = llm.model or ollama_file.model
        llm.max_tokens = llm.max_tokens or ollama_file.max_tokens
        if llm.temperature is None:
            llm.temperature = ollama_file.temperature
        if llm.top_p is None:
            llm.top_p = ollama_file.top_p
        if ollama_file.request_timeout and "request_timeout" not in file_llm.model_fields_set:
            llm.request_timeout = float(ollama_file.request_timeout)
    llm.base_url = llm.base_url or env("ATOLL_LLM_BASE_URL")
    llm.model = llm.model or env("ATOLL_LLM_MODEL")
    if llm.provider == "ollama":
        # A URL is used as written, path included, wherever it comes from; only OLLAMA_HOST-style
        # host[:port] values get Ollama's defaults (see normalise_ollama_host).
        llm.base_url = normalise_ollama_host(llm.base_url or env_host or "127.0.0.1:11434")
        llm.model = llm.model or "llama3.2"
    return llm


def load_agent_config(path: Path | None, *, cwd: Path | None = None) -> AgentConfig:
    """The full agent configuration: the agent file (or the default agent), the Ollama config
    file, ``mcp.json`` in the working directory and the environment, merged by precedence."""
    config = load_agent_file(path) if path else AgentConfig()
    config.llm = resolve_llm(config.llm, load_ollama_config())
    mcp_json = ((cwd or Path.cwd()) / "mcp.json").resolve()  # errors name it by its absolute path
    if mcp_json.is_file():
        for name, server in load_mcp_json(mcp_json).items():
            config.mcp_servers.setdefault(name, server)
    session_url = env("ATOLL_SESSION_URL")
    if session_url and "session_store" not in config.server.model_fields_set:
        config.server.session_store = "redis"
    if config.server.session_store == "redis" and not config.server.session_url:
        if not session_url:
            raise ConfigError('session_store = "redis" needs session_url (or ATOLL_SESSION_URL)',
                              path=str(config.source) if config.source else None, field="server.session_url")
        if not _REDIS_URL.match(session_url):
            raise ConfigError("must be a redis://, rediss:// or unix:// URL", field="ATOLL_SESSION_URL")
        config.server.session_url = session_url
    keys = env("ATOLL_API_KEYS")
    if keys and not config.server.api_keys:
        config.server.api_keys = [k.strip() for k in keys.split(",") if k.strip()]
    return config
