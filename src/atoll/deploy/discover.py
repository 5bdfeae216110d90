"""Discovery: a folder of agent folders -> validated agent specs. Pure: it reads files, starts nothing.

Every sub-folder holding ``agent.toml`` (or else ``agent.json``) is an agent. Hidden folders (the
deployer's ``.staging``, ``.previous``) are skipped. An invalid agent becomes a ``Problem`` with the
reason and the others still come through; two agents with one name are both reported and neither is
returned as a spec.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from atoll.config import AgentConfig, load_agent_file, load_ollama_config, resolve_llm
from atoll.errors import AtollError, ConfigError
from atoll.providers.gguf import DEFAULT_N_CTX, DEFAULT_N_THREADS, resolve_model_path

AGENT_FILE_NAMES = ("agent.toml", "agent.json")


@dataclass(frozen=True)
class LocalModel:
    """The embedded model an agent with ``provider = "local"`` runs: agents with the same one share
    a model host (``atoll.deploy.model_hosts``)."""

    path: str
    context_length: int = DEFAULT_N_CTX
    threads: int = DEFAULT_N_THREADS


@dataclass(frozen=True)
class AgentSpec:
    """What the supervisor needs to run one agent."""

    name: str
    folder: Path
    agent_file: Path
    preferred_port: int | None = None
    startup_timeout: float | None = None
    auto_start: bool = True
    env: dict[str, str] = field(default_factory=dict)
    #: Set when the agent runs the embedded model (``provider = "local"``).
    local_model: LocalModel | None = None


@dataclass(frozen=True)
class Problem:
    folder: Path
    reason: str
    name: str | None = None


@dataclass
class Discovery:
    specs: list[AgentSpec] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def agent_file_in(folder: Path) -> Path | None:
    for file_name in AGENT_FILE_NAMES:
        candidate = folder / file_name
        if candidate.is_file():
            return candidate
    return None


def load_spec(agent_file: Path) -> AgentSpec:
    """Validate one agent file; raises ``ConfigError`` naming the file and the field."""
    config = load_agent_file(agent_file)
    deployment = config.deployment
    return AgentSpec(
        name=config.agent.name,
        folder=agent_file.parent.resolve(),
        agent_file=agent_file.resolve(),
        preferred_port=deployment.port,
        startup_timeout=deployment.startup_timeout if "startup_timeout" in deployment.model_fields_set
        else None,
        auto_start=deployment.auto_start,
        env=dict(deployment.env),
        local_model=local_model_of(config, agent_file.parent),
    )


def local_model_of(config: AgentConfig, folder: Path) -> LocalModel | None:
    """The agent's embedded model as the agent itself will resolve it (its provider by the same
    precedence, its ``model_path`` relative to its folder), or None: not local, or a model file
    that is missing (the agent then fails on its own, with its own error)."""
    try:
        llm = resolve_llm(config.llm, load_ollama_config())
        if llm.provider != "local":
            return None
        path = resolve_model_path(str(folder / Path(llm.model_path).expanduser()) if llm.model_path else None)
        return LocalModel(str(path.resolve()), llm.context_length or DEFAULT_N_CTX,
                          int(llm.extra.get("n_threads", DEFAULT_N_THREADS)))
    except (AtollError, ValueError, TypeError):
        return None


def discover(agents_dir: Path) -> Discovery:
    result = Discovery()
    if not agents_dir.is_dir():
        return result
    found: list[AgentSpec] = []
    for folder in sorted(p for p in agents_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        agent_file = agent_file_in(folder)
        if agent_file is None:
            continue
        try:
            found.append(load_spec(agent_file))
        except ConfigError as exc:
            result.problems.append(Problem(folder=folder, reason=str(exc)))
    by_name: dict[str, list[AgentSpec]] = defaultdict(list)
    for spec in found:
        by_name[spec.name.lower()].append(spec)  # clients match model names case-insensitively
    for specs in by_name.values():
        if len(specs) == 1:
            result.specs.append(specs[0])
            continue
        name = specs[0].name
        folders = ", ".join(str(s.folder) for s in specs)
        for spec in specs:
            result.problems.append(
                Problem(folder=spec.folder, name=name, reason=f"duplicate agent name '{name}' (in {folders})")
            )
    return result
