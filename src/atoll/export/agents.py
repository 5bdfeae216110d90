"""The agents of a folder as an exporter needs them: validated, but with every ``$VAR`` left a
reference (its value belongs to the platform's secrets, never to the exported files)."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from atoll.config import AgentConfig, load_agent_file, load_mcp_json, read_document, referenced_vars
from atoll.deploy.discover import agent_file_in
from atoll.errors import ConfigError

#: Stands in for every ``$VAR`` while a file is validated here. Any string field accepts it,
#: ``session_url`` included (it must look like a Redis URL); the real value comes at run time.
STAND_IN = "redis://stand-in.invalid/0"


class _StandIns(dict[str, str]):
    """An environment in which every variable is set, to the stand-in."""

    def get(self, key: str, default: str | None = None) -> str:  # type: ignore[override]
        return STAND_IN


@dataclass(frozen=True)
class ExportedAgent:
    config: AgentConfig
    folder: Path
    agent_file: Path
    #: ``mcp.json`` beside the agent file, if any (the agent server reads it from its working folder).
    mcp_json: Path | None
    #: Environment variables the files refer to, each with whether the reference has a default.
    variables: dict[str, bool]

    @property
    def name(self) -> str:
        return self.config.agent.name

    @property
    def slug(self) -> str:
        """A Kubernetes object name (DNS-1123 label) for the agent, unique among agents."""
        base = re.sub(r"[^a-z0-9-]+", "-", self.name.lower()).strip("-")[:40].strip("-") or "agent"
        if base == self.name.lower():
            return base
        return f"{base}-{hashlib.sha256(self.name.encode()).hexdigest()[:6]}"

    def raw_files(self) -> dict[str, str]:
        """The agent's files, byte for byte as written (references unexpanded)."""
        files = {self.agent_file.name: self.agent_file.read_text(encoding="utf-8")}
        if self.mcp_json is not None:
            files["mcp.json"] = self.mcp_json.read_text(encoding="utf-8")
        return files


def load_for_export(agent_file: Path) -> ExportedAgent:
    config = load_agent_file(agent_file, environ=_StandIns())
    mcp_json = agent_file.parent / "mcp.json"
    variables = referenced_vars(read_document(agent_file))
    if mcp_json.is_file():
        load_mcp_json(mcp_json, environ=_StandIns())  # the agent server reads it at start: same checks
        for name, has_default in referenced_vars(read_document(mcp_json)).items():
            variables[name] = variables.get(name, True) and has_default
    return ExportedAgent(config, agent_file.parent.resolve(), agent_file.resolve(),
                         mcp_json.resolve() if mcp_json.is_file() else None, dict(sorted(variables.items())))


def agents_to_export(agents_dir: Path) -> list[ExportedAgent]:
    """Every agent folder under ``agents_dir``; every problem at once as one ``ConfigError``."""
    if not agents_dir.is_dir():
        raise ConfigError("not a folder of agent folders", path=str(agents_dir))
    found: list[ExportedAgent] = []
    problems: list[str] = []
    for folder in sorted(p for p in agents_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        agent_file = agent_file_in(folder)
        if agent_file is None:
            continue
        try:
            found.append(load_for_export(agent_file))
        except ConfigError as exc:
            problems.append(str(exc))
    by_key: dict[str, list[ExportedAgent]] = defaultdict(list)
    for agent in found:
        by_key[agent.name.lower()].append(agent)
    for same in by_key.values():
        if len(same) > 1:
            problems.append(f"duplicate agent name '{same[0].name}' (in "
                            + ", ".join(str(a.folder) for a in same) + ")")
    if problems:
        raise ConfigError("; ".join(problems))
    if not found:
        raise ConfigError("no agent folders (each with agent.toml or agent.json)", path=str(agents_dir))
    return found
