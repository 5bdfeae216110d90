"""Several copies of one agent (Kubernetes pods, Ray Serve replicas): the rule every backend that
runs them shares.

An agent that may run more than one copy must keep its sessions in Redis: with SQLite or memory each
copy has its own sessions, and a conversation whose next turn reaches another copy loses its history.
"""

from __future__ import annotations

from pathlib import Path

from atoll.config import AgentConfig
from atoll.errors import ConfigError


def session_store(config: AgentConfig, *, session_url_env: bool) -> str:
    """The store the agent's copies use: the file's ``session_store``; with none written, Redis when
    ``ATOLL_SESSION_URL`` is set where they run (as ``load_agent_config`` decides), else the default."""
    server = config.server
    if session_url_env and "session_store" not in server.model_fields_set:
        return "redis"
    return server.session_store


def check_replicas(config: AgentConfig, agent_file: Path, *, session_url_env: bool = False) -> None:
    """Refuse more than one copy of an agent whose sessions would live in each copy.

    ``session_url_env``: whether ``ATOLL_SESSION_URL`` is set in the copies' environment.
    """
    deployment = config.deployment
    store = session_store(config, session_url_env=session_url_env)
    if deployment.most_replicas > 1 and store != "redis":
        field = "deployment.max_replicas" if deployment.autoscaling else "deployment.replicas"
        raise ConfigError(
            f"{deployment.most_replicas} replicas with session_store = \"{store}\": each replica (pod, Ray "
            "Serve replica) would keep its own sessions, so a conversation whose next turn reaches another "
            "replica loses its history; set [server] session_store = \"redis\" with session_url = "
            "\"$REDIS_URL\" (or ATOLL_SESSION_URL where the replicas run), or one replica",
            path=str(agent_file), field=field)
