"""The agents as Ray Serve applications: the Serve config (``ServeDeploySchema``) both the Ray backend
and ``atoll export k8s --ray`` deploy. Pure data: no ``ray`` import, nothing started.

Each agent is its own application, named after the agent, at ``/agent/<name>`` (the front door's
per-agent prefix), built by ``AGENT_BUILDER`` from ``{"agent_file": ...}``; its one deployment,
``AGENT_DEPLOYMENT``, carries the ``[deployment]`` scaling settings:

===========================================  =====================================================
agent file                                    Serve config
===========================================  =====================================================
``replicas = N``                              ``num_replicas: N``
``min_replicas``/``max_replicas``             ``autoscaling_config: {min_replicas, max_replicas}``
                                              (at ``AUTOSCALING_PACE``)
``target_ongoing_requests``                   ``autoscaling_config.target_ongoing_requests`` (and
                                              ``max_ongoing_requests`` above it, as Ray advises)
``ray_actor_options``                         ``ray_actor_options`` (num_cpus, num_gpus, memory,
                                              resources, accelerator_type)
``[server] drain_timeout``                    ``graceful_shutdown_timeout_s``
``requirements.txt`` beside the agent file    ``runtime_env.pip`` (its lines)
===========================================  =====================================================

``[deployment] env`` is not in the config: Serve shows its config to anyone who can read its API, so
the builder applies it inside the replica. One ingress application (``INGRESS_APP``) serves ``/``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from atoll.config import AgentConfig
from atoll.deploy.config import DeploymentConfig
from atoll.deploy.venvs import requirement_lines
from atoll.replicas import check_replicas

#: The Serve application builders (``module:function``, each taking the application's ``args``).
AGENT_BUILDER = "atoll.ray.apps:agent_app"
INGRESS_BUILDER = "atoll.ray.apps:ingress_app"
#: The names the builders give their one deployment: the config's options apply by these names.
AGENT_DEPLOYMENT = "agent"
INGRESS_DEPLOYMENT = "ingress"
#: The ingress application's name; agent names start with a letter or digit, so none is this.
INGRESS_APP = "_ingress"
AGENT_PREFIX = "/agent/"
#: Serve's ``max_ongoing_requests`` default; Ray advises setting it 20-50 % above the target.
SERVE_MAX_ONGOING = 5

#: How fast Serve scales an agent: up after 2 s above target, averaged over the last 15 s (Serve's
#: defaults, 30 s and 30 s, leave a burst of chats queued on one replica for half a minute; the
#: window must stay above Serve's 10 s metrics interval); down after Serve's default 10 minutes.
AUTOSCALING_PACE = {"upscale_delay_s": 2.0, "look_back_period_s": 15.0}

Application = dict[str, Any]


def route_prefix(name: str) -> str:
    """``/agent/<name>``. Serve matches prefixes against the percent-decoded path, so the name is
    written as is: a client's escaped ``/agent/team%2Fbot/...`` (the front door's form) decodes to
    ``/agent/team/bot/...`` and reaches agent ``team/bot``. Agent names hold only letters, digits,
    ``. _ -`` and one ``/``: nothing Serve refuses in a prefix."""
    return AGENT_PREFIX + name


def agent_application(agent_file: Path, config: AgentConfig, *, session_url_env: bool = False,
                      read_from: str | None = None, working_dir: str | None = None) -> Application:
    """One agent as a Serve application (``ServeApplicationSchema``).

    ``session_url_env``: ``ATOLL_SESSION_URL`` is set where the replicas run. ``read_from``: where the
    replicas read the agent file, if not at ``agent_file``. ``working_dir``: a URI Ray fetches the
    agent folder from (Serve accepts no local path there); then the agent file is named relative to it.
    Raises ``ConfigError`` (file and field) for several replicas with per-replica sessions.
    """
    check_replicas(config, agent_file, session_url_env=session_url_env)
    runtime_env: dict[str, Any] = {}
    if working_dir is not None:
        runtime_env["working_dir"] = working_dir
    pip = requirement_lines(agent_file.parent)
    if pip:
        runtime_env["pip"] = pip
    application: Application = {
        "name": config.agent.name,
        "route_prefix": route_prefix(config.agent.name),
        "import_path": AGENT_BUILDER,
        "args": {"agent_file": agent_file.name if working_dir is not None else read_from or str(agent_file)},
        "deployments": [agent_deployment(config)],
    }
    if runtime_env:
        application["runtime_env"] = runtime_env
    return application


def agent_deployment(config: AgentConfig) -> dict[str, Any]:
    """The agent's deployment options (``DeploymentSchema``) from its ``[deployment]`` section."""
    settings = config.deployment
    deployment: dict[str, Any] = {"name": AGENT_DEPLOYMENT}
    if settings.autoscaling:
        autoscaling: dict[str, Any] = {"min_replicas": settings.min_replicas or 1,
                                       "max_replicas": settings.max_replicas, **AUTOSCALING_PACE}
        target = settings.target_ongoing_requests
        if target is not None:
            autoscaling["target_ongoing_requests"] = target
            deployment["max_ongoing_requests"] = max(SERVE_MAX_ONGOING, math.ceil(target * 1.5))
        deployment["autoscaling_config"] = autoscaling
    else:
        deployment["num_replicas"] = settings.replicas
    deployment["graceful_shutdown_timeout_s"] = config.server.drain_timeout
    actor_options = settings.ray_actor_options.model_dump(exclude_defaults=True)
    if actor_options:
        deployment["ray_actor_options"] = actor_options
    return deployment


def ingress_application(args: Mapping[str, Any] | None = None, *, replicas: int = 1,
                        ray_actor_options: Mapping[str, Any] | None = None) -> Application:
    """The ingress at ``/`` (Ollama and OpenAI APIs for every agent); ``args`` go to its builder as given."""
    deployment: dict[str, Any] = {"name": INGRESS_DEPLOYMENT, "num_replicas": replicas}
    if ray_actor_options:
        deployment["ray_actor_options"] = dict(ray_actor_options)
    return {"name": INGRESS_APP, "route_prefix": "/", "import_path": INGRESS_BUILDER,
            "args": dict(args or {}), "deployments": [deployment]}


def ingress_settings(config: DeploymentConfig, http_port: int, secret: str = "") -> dict[str, Any]:
    """What the ingress's builder needs (its ``front`` argument): of the deployment config, the relay
    limit and the browser policy, no admin token (the ingress has no management routes); Serve's HTTP
    port, through which it reaches the agents; the secret the agents' own keys derive from ("" where
    there is none, as on Kubernetes: a Serve config must not hold one)."""
    return {"http_port": http_port, "secret": secret, "max_relays_per_agent": config.max_relays_per_agent,
            "cors_origins": config.cors_origins, "allowed_hosts": config.allowed_hosts}


def serve_config(applications: Sequence[Application], *, host: str = "127.0.0.1", port: int = 8000,
                 proxy_location: Literal["HeadOnly", "EveryNode"] = "HeadOnly") -> dict[str, Any]:
    """The whole Serve config (``ServeDeploySchema``). Declarative: an application left out of it is
    deleted when it is deployed, so it must always list every application."""
    return {"proxy_location": proxy_location, "http_options": {"host": host, "port": port},
            "applications": list(applications)}
