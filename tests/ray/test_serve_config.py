"""The agents as Ray Serve applications: scaling settings land in the right Serve fields, names reach
their agent the way Serve routes, requirements.txt becomes the runtime_env, several replicas with
per-replica sessions are refused, and the whole config is valid for Ray Serve's own schema
(``ray.serve.schema``, the installed Ray: pure pydantic, no cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from pydantic import ValidationError
from ray.serve.schema import ServeDeploySchema

from atoll.config import AgentSection, load_agent_file
from atoll.deploy.passthrough import split
from atoll.errors import ConfigError
from atoll.ray.serve_config import (
    AGENT_BUILDER,
    AGENT_DEPLOYMENT,
    AUTOSCALING_PACE,
    INGRESS_APP,
    agent_application,
    ingress_application,
    route_prefix,
    serve_config,
)
from tests.support.servers import scripted_agent_toml, write_agent

REDIS = '[server]\nsession_store = "redis"\nsession_url = "redis://127.0.0.1:6379/0"\n'


def app_for(folder: Path, extra: str = "", name: str = "echo", **options: Any) -> dict[str, Any]:
    agent_file = write_agent(folder, scripted_agent_toml(name, extra=extra))
    return agent_application(agent_file, load_agent_file(agent_file), **options)


def deployment_of(app: dict[str, Any]) -> dict[str, Any]:
    (deployment,) = app["deployments"]
    assert deployment["name"] == AGENT_DEPLOYMENT
    return dict(deployment)


@pytest.mark.parametrize(("scaling", "expected"), [
    ("", {"num_replicas": 1}),
    ("replicas = 3\n", {"num_replicas": 3}),
    ("max_replicas = 4\n", {"autoscaling_config": {"min_replicas": 1, "max_replicas": 4, **AUTOSCALING_PACE}}),
    ("min_replicas = 2\nmax_replicas = 6\ntarget_ongoing_requests = 3\n",
     {"autoscaling_config": {"min_replicas": 2, "max_replicas": 6, "target_ongoing_requests": 3.0,
                             **AUTOSCALING_PACE},
      "max_ongoing_requests": 5}),
    ("max_replicas = 2\ntarget_ongoing_requests = 8\n",  # the per-replica cap stays above the target
     {"autoscaling_config": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 8.0,
                             **AUTOSCALING_PACE},
      "max_ongoing_requests": 12}),
], ids=["default", "fixed", "autoscaling", "target", "high-target"])
def test_scaling_settings_map_to_serve_fields(tmp_path: Path, scaling: str, expected: dict[str, Any]) -> None:
    deployment = deployment_of(app_for(tmp_path / "echo", f"{REDIS}[deployment]\n{scaling}"))
    scaling_fields = ("num_replicas", "autoscaling_config", "max_ongoing_requests")
    assert {k: v for k, v in deployment.items() if k in scaling_fields} == expected


def test_actor_options_and_drain_timeout_are_passed_on(tmp_path: Path) -> None:
    deployment = deployment_of(app_for(tmp_path / "echo", '[server]\ndrain_timeout = 25\n[deployment]\n'
                                       'ray_actor_options = { num_cpus = 0.25, memory = 268435456, '
                                       'resources = { special = 1 } }\n'))
    assert deployment["ray_actor_options"] == {"num_cpus": 0.25, "memory": 268435456, "resources": {"special": 1}}
    assert deployment["graceful_shutdown_timeout_s"] == 25
    assert "ray_actor_options" not in deployment_of(app_for(tmp_path / "plain"))


def test_an_unknown_actor_option_names_the_file_and_the_field(tmp_path: Path) -> None:
    agent_file = write_agent(tmp_path / "echo", scripted_agent_toml(
        "echo", extra="[deployment]\nray_actor_options = { num_cpu = 1 }\n"))
    with pytest.raises(ConfigError) as caught:
        load_agent_file(agent_file)
    assert str(agent_file) in str(caught.value) and "deployment.ray_actor_options.num_cpu" in str(caught.value)


def test_the_application_is_named_after_the_agent_and_built_from_its_file(tmp_path: Path) -> None:
    app = app_for(tmp_path / "echo")
    assert (app["name"], app["route_prefix"], app["import_path"]) == ("echo", "/agent/echo", AGENT_BUILDER)
    assert app["args"] == {"agent_file": str(tmp_path / "echo" / "agent.toml")}
    assert "runtime_env" not in app
    mounted = app_for(tmp_path / "echo", read_from="/etc/atoll/agents/echo/agent.toml")
    assert mounted["args"] == {"agent_file": "/etc/atoll/agents/echo/agent.toml"}
    fetched = app_for(tmp_path / "echo", working_dir="gcs://_ray_pkg_0123abcd.zip")
    assert fetched["runtime_env"] == {"working_dir": "gcs://_ray_pkg_0123abcd.zip"}
    assert fetched["args"] == {"agent_file": "agent.toml"}  # relative to the fetched folder


def test_requirements_txt_becomes_the_runtime_env(tmp_path: Path) -> None:
    folder = tmp_path / "echo"
    folder.mkdir()
    (folder / "requirements.txt").write_text("# tools the agent needs\nhumanize==4.9.0\n\n"
                                             "rich>=13  # pretty output\n")
    assert app_for(folder)["runtime_env"] == {"pip": ["humanize==4.9.0", "rich>=13"]}
    (folder / "requirements.txt").write_text("# nothing yet\n")
    assert "runtime_env" not in app_for(folder)


@pytest.mark.parametrize("name", ["echo", "Writer.v2", "team/mail_bot-2"])
def test_the_front_doors_escaped_agent_path_reaches_the_agent_on_serve(tmp_path: Path, name: str) -> None:
    prefix = route_prefix(name)
    client_path = f"/agent/{quote(name, safe='')}/api/chat"  # what a client of the front door sends
    assert split(client_path) == (name, "/api/chat")  # the front door's reading of it
    # Serve's proxy matches the percent-decoded path (the ASGI scope's "path") by longest prefix,
    # the next character being "/" or nothing
    decoded = unquote(client_path)
    assert decoded.startswith(prefix) and decoded[len(prefix)] == "/"
    assert app_for(tmp_path / "a", name=name)["route_prefix"] == prefix


@pytest.mark.parametrize("store", ["sqlite", "memory"])
@pytest.mark.parametrize(("scaling", "field"), [("replicas = 2", "deployment.replicas"),
                                                ("max_replicas = 3", "deployment.max_replicas")])
def test_several_replicas_with_per_replica_sessions_are_refused(
        tmp_path: Path, store: str, scaling: str, field: str) -> None:
    agent_file = write_agent(tmp_path / "solo", scripted_agent_toml(
        "solo", extra=f'[server]\nsession_store = "{store}"\n[deployment]\n{scaling}\n'))
    with pytest.raises(ConfigError) as caught:
        agent_application(agent_file, load_agent_file(agent_file))
    message = str(caught.value)
    assert str(agent_file) in message and field in message and f'session_store = "{store}"' in message
    assert "own sessions" in message and 'session_store = "redis"' in message and "ATOLL_SESSION_URL" in message
    # ATOLL_SESSION_URL where the replicas run does not override a store the file names
    with pytest.raises(ConfigError):
        agent_application(agent_file, load_agent_file(agent_file), session_url_env=True)


def test_atoll_session_url_makes_an_agent_without_a_store_share_sessions(tmp_path: Path) -> None:
    agent_file = write_agent(tmp_path / "a", scripted_agent_toml("a", extra="[deployment]\nreplicas = 2\n"))
    with pytest.raises(ConfigError, match='session_store = "sqlite"'):
        agent_application(agent_file, load_agent_file(agent_file))
    app = agent_application(agent_file, load_agent_file(agent_file), session_url_env=True)
    assert deployment_of(app)["num_replicas"] == 2


def test_the_ingress_name_can_never_be_an_agents(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        AgentSection(name=INGRESS_APP)
    ingress = ingress_application({"agents": ["echo"]}, ray_actor_options={"num_cpus": 0.1})
    assert (ingress["name"], ingress["route_prefix"], ingress["args"]) == (INGRESS_APP, "/", {"agents": ["echo"]})


def test_the_whole_config_is_valid_for_ray_serve(tmp_path: Path) -> None:
    folder = tmp_path / "writer"
    folder.mkdir()
    (folder / "requirements.txt").write_text("humanize==4.9.0\n")
    apps = [app_for(tmp_path / "echo", f"{REDIS}[deployment]\nmin_replicas = 1\nmax_replicas = 3\n"
                    "target_ongoing_requests = 2\nray_actor_options = { num_cpus = 0.5 }\n"),
            app_for(folder, f"{REDIS}[deployment]\nreplicas = 2\n", name="team/writer"),
            app_for(tmp_path / "fetched", name="fetched", working_dir="gcs://_ray_pkg_0123abcd.zip"),
            ingress_application({"agents": ["echo", "team/writer", "fetched"]})]
    config = serve_config(apps)
    parsed = ServeDeploySchema.model_validate(config)
    assert parsed.http_options.host == "127.0.0.1" and parsed.proxy_location == "HeadOnly"
    assert [app.route_prefix for app in parsed.applications] == ["/agent/echo", "/agent/team/writer",
                                                                 "/agent/fetched", "/"]
    echo = parsed.applications[0].deployments[0]
    assert echo.autoscaling_config["max_replicas"] == 3 and echo.ray_actor_options.num_cpus == 0.5
    # the schema checks values (it lets unknown keys through): both ways of scaling at once is refused
    both = {**apps[0], "deployments": [{**apps[0]["deployments"][0], "num_replicas": 2}]}
    with pytest.raises(ValidationError, match="num_replicas is not allowed when autoscaling_config"):
        ServeDeploySchema.model_validate(serve_config([both]))
