"""``atoll export k8s --ray``: a KubeRay RayService instead of a Deployment per agent.

Every object of a built-in kind passes ``kubernetes-validate --strict`` for Kubernetes 1.33, and so do
the RayService's head and worker pod templates (checked as ``v1 PodTemplate`` objects). The RayService
itself is a custom resource that kubernetes-validate has no schema for: it is checked as YAML against
the fields KubeRay documents for ``ray.io/v1`` (``spec.serveConfigV2`` a string; ``rayClusterConfig``
with ``headGroupSpec`` and ``workerGroupSpecs``, each with ``rayStartParams`` and a pod ``template``,
workers with ``replicas``/``minReplicas``/``maxReplicas``), and its ``serveConfigV2`` against Ray
Serve's own schema (the installed Ray's ``ServeDeploySchema``). The front door's rendered settings
are run for real, with a deployment server standing in for the Serve ingress (the same front-door
API and ``/agent/{name}/...`` prefix).
"""

from __future__ import annotations

import json
import subprocess
from contextlib import ExitStack
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema
from starlette.applications import Starlette

from atoll.ray.apps import AgentReplica, Ingress
from atoll.ray.serve_config import AGENT_BUILDER, AUTOSCALING_PACE, INGRESS_BUILDER
from tests.export.test_k8s import SECRET_VALUE, VALIDATOR, export, front_door, objects, sample_agents
from tests.support.servers import scripted_agent_toml, write_agent
from tests.support.waiting import wait_until

ADMIN = "front-door-admin-token"


def ray_export(agents: Path, out: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return export(agents, out, "--ray", *extra, **env)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export-ray")
    out = root / "k8s"
    done = ray_export(sample_agents(root), out, "--namespace", "agents", "--image", "example.org/atoll:1",
                      OPENAI_KEY=SECRET_VALUE, REDIS_URL="redis://:" + SECRET_VALUE + "@redis:6379/0")
    assert done.returncode == 0, done.stderr
    return out


def ray_service(out: Path) -> dict[str, Any]:
    (service,) = yaml.safe_load_all((out / "ray-service.yaml").read_text())
    return dict(service)


def serve_config(out: Path) -> dict[str, Any]:
    text = ray_service(out)["spec"]["serveConfigV2"]
    assert isinstance(text, str)  # KubeRay takes the Serve config as a YAML string
    return dict(yaml.safe_load(text))


def pods(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    cluster = service["spec"]["rayClusterConfig"]
    (workers,) = cluster["workerGroupSpecs"]
    return {"head": cluster["headGroupSpec"]["template"], "worker": workers["template"]}


def test_built_in_objects_and_the_ray_pod_templates_pass_strict_validation(rendered: Path, tmp_path: Path) -> None:
    templates = tmp_path / "ray-pod-templates.yaml"
    templates.write_text(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"ray-{role}"}, "template": template}
        for role, template in pods(ray_service(rendered)).items()]))
    files = [str(rendered / name) for name in ("namespace.yaml", "agents.yaml", "ray-network.yaml", "front-door.yaml")]
    result = subprocess.run([str(VALIDATOR), "--strict", "-k", "1.33.0", *files, str(templates)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == 1 + 2 + 1 + 3 + 2
    assert sorted(p.name for p in rendered.glob("*.yaml")) == sorted(
        [Path(f).name for f in files] + ["ray-service.yaml", "kustomization.yaml"])
    kustomization = yaml.safe_load((rendered / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted([Path(f).name for f in files] + ["ray-service.yaml"])


def test_the_ray_service_has_the_fields_kuberay_documents(rendered: Path) -> None:
    service = ray_service(rendered)
    assert (service["apiVersion"], service["kind"], service["metadata"]["name"]) == ("ray.io/v1", "RayService", "atoll")
    assert service["metadata"]["namespace"] == "agents"
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == version("ray")  # the image's Ray must be the one the config was made for
    assert cluster["authOptions"] == {"mode": "token"}  # Ray's own token auth
    head = cluster["headGroupSpec"]
    assert head["serviceType"] == "ClusterIP" and not head.get("enableIngress")
    (workers,) = cluster["workerGroupSpecs"]
    assert workers["groupName"] and workers["minReplicas"] <= workers["replicas"] <= workers["maxReplicas"]
    for group in (head, workers):
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())
    for role, template in pods(service).items():
        spec = template["spec"]
        (container,) = spec["containers"]
        assert container["image"] == "example.org/atoll:1" and container["name"] == f"ray-{role}"
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 10001
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/tmp", "/dev/shm", "/var/lib/atoll"}
        assert container["resources"]["requests"] == container["resources"]["limits"]
        assert template["metadata"]["labels"]["app.kubernetes.io/component"] == "ray"
    assert pods(service)["worker"]["spec"]["automountServiceAccountToken"] is False


def test_the_serve_config_is_the_agents_and_each_reads_its_own_config_map(rendered: Path) -> None:
    config = serve_config(rendered)
    parsed = ServeDeploySchema.model_validate(config)
    assert {app.name: app.route_prefix for app in parsed.applications} == {
        "echo": "/agent/echo", "Writer.v2": "/agent/Writer.v2", "_ingress": "/"}
    echo = next(app for app in config["applications"] if app["name"] == "echo")
    assert echo["deployments"][0]["autoscaling_config"] == {"min_replicas": 2, "max_replicas": 5, **AUTOSCALING_PACE}
    # every agent file the config names is mounted, in every Ray pod, from the ConfigMap holding it
    maps = {doc["metadata"]["name"]: doc["data"] for doc in yaml.safe_load_all((rendered / "agents.yaml").read_text())}
    for role, template in pods(ray_service(rendered)).items():
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in template["spec"]["containers"][0]["volumeMounts"]}
        for app in config["applications"][:-1]:
            folder, _, file_name = app["args"]["agent_file"].rpartition("/")
            data = maps[volumes[mounts[folder]]["configMap"]["name"]]
            assert f'name = "{app["name"]}"' in data[file_name], (role, app["name"])
    writer = next(data for name, data in maps.items() if name.startswith("atoll-writer-v2-"))
    assert "mcp.json" in writer  # beside the agent file, where a replica reads it


def test_the_builders_take_the_rendered_arguments(rendered: Path) -> None:
    """What the Serve config hands each builder is what its deployment class takes: the ingress app
    builds from its arguments (no secret in them), each agent replica from its file's path alone."""
    apps = {app["import_path"]: app for app in serve_config(rendered)["applications"]}
    assert set(apps) == {AGENT_BUILDER, INGRESS_BUILDER}
    front = apps[INGRESS_BUILDER]["args"]["front"]
    assert front["secret"] == "" and front["http_port"] == 8000
    assert isinstance(Ingress(**apps[INGRESS_BUILDER]["args"]).__serve_build_asgi_app__(), Starlette)
    replica = AgentReplica(**apps[AGENT_BUILDER]["args"])
    assert replica.agent_file.startswith("/etc/atoll/agents/") and (replica.secret, replica.session_url) == ("", "")


def test_secrets_are_references_never_values(rendered: Path) -> None:
    for path in rendered.iterdir():
        assert SECRET_VALUE not in path.read_text(), path.name
    for role, template in pods(ray_service(rendered)).items():
        env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
        assert env["OPENAI_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "atoll-ray-env", "key": "OPENAI_KEY"}, role
        assert env["ATOLL_KEY"]["valueFrom"]["secretKeyRef"]["optional"] is True  # ${ATOLL_KEY:-}
        assert env["GITHUB_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "GITHUB_TOKEN"  # from mcp.json
        assert "REDIS_URL" in env
    front = objects(rendered)[("Deployment", "atoll-front-door")]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "ATOLL_ADMIN_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "atoll-admin-token", "key": "token"}}} in front
    note = (rendered / "SECRETS.md").read_text()
    assert "atoll-admin-token" in note and "atoll-ray-env" in note and "--from-literal=OPENAI_KEY=..." in note


def test_only_the_ray_pods_the_front_door_and_the_operator_reach_ray(rendered: Path) -> None:
    (policy,) = yaml.safe_load_all((rendered / "ray-network.yaml").read_text())
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "ray"
    ray_pods, front, operator = spec["ingress"]
    assert ray_pods["from"] == [{"podSelector": spec["podSelector"]}] and "ports" not in ray_pods
    assert front["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "front-door"
    assert front["ports"] == [{"port": 8000, "protocol": "TCP"}]
    assert operator["from"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "kuberay-operator"}
    assert {p["port"] for p in operator["ports"]} == {8265, 52365, 8000}
    for doc in objects(rendered).values():  # nothing of ours faces outside the cluster
        assert doc["kind"] != "Service" or doc["spec"].get("type", "ClusterIP") == "ClusterIP"
        assert doc["kind"] != "Ingress"


def test_changing_the_scaling_settings_changes_the_serve_config(tmp_path: Path) -> None:
    def rendered_with(scaling: str) -> tuple[dict[str, Any], dict[str, Any]]:
        out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
        done = ray_export(sample_agents(tmp_path / f"src-{out.name}", scaling=scaling), out)
        assert done.returncode == 0, done.stderr
        echo = next(app for app in serve_config(out)["applications"] if app["name"] == "echo")
        (workers,) = ray_service(out)["spec"]["rayClusterConfig"]["workerGroupSpecs"]
        return echo["deployments"][0], workers

    fixed, workers = rendered_with("replicas = 3\n")
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed
    assert workers["maxReplicas"] == 3 + 1  # room for every replica of both agents
    scaling, workers = rendered_with("min_replicas = 2\nmax_replicas = 6\ntarget_ongoing_requests = 4\n"
                                     "ray_actor_options = { num_cpus = 0.5 }\n")
    assert scaling["autoscaling_config"] == {"min_replicas": 2, "max_replicas": 6, "target_ongoing_requests": 4.0,
                                             **AUTOSCALING_PACE}
    assert "num_replicas" not in scaling and scaling["ray_actor_options"] == {"num_cpus": 0.5}
    assert workers["maxReplicas"] == 6 + 1


@pytest.mark.parametrize("store", ["sqlite", "memory"])
def test_several_replicas_with_per_replica_sessions_are_refused(tmp_path: Path, store: str) -> None:
    agent = write_agent(tmp_path / "agents" / "solo", scripted_agent_toml(
        "solo", extra=f'[server]\nsession_store = "{store}"\n[deployment]\nmax_replicas = 2\n'))
    done = ray_export(tmp_path / "agents", tmp_path / "out")
    assert done.returncode == 2 and not (tmp_path / "out").exists()
    assert str(agent) in done.stderr and "deployment.max_replicas" in done.stderr
    assert f'session_store = "{store}"' in done.stderr and "own sessions" in done.stderr


def test_the_rendered_front_door_routes_through_the_serve_service(rendered: Path, tmp_path: Path) -> None:
    """The front door's ConfigMap as rendered, its one remote (the Serve Service) resolved to a
    deployment server with both agents standing in for the Serve ingress."""
    settings = json.loads(objects(rendered)[("ConfigMap", "atoll-front-door-config")]["data"]
                          ["deployment_servers.json"])
    (remote,) = settings["remote_servers"]
    assert (remote["kind"], remote["host"], remote["port"]) == ("serve", "atoll-serve-svc", 8000)
    names = ["Writer.v2", "echo"]
    agents = tmp_path / "serve-agents"
    for name in names:
        write_agent(agents / name, scripted_agent_toml(name, extra='[server]\nsession_store = "memory"\n'))
    with ExitStack() as stack:
        stand_in = tmp_path / "stand-in"
        stand_in.mkdir()
        serve = stack.enter_context(front_door({"agents_directory": str(agents)}, stand_in, token="other-token"))
        wait_until(lambda: len(httpx.get(f"{serve}/api/tags", timeout=5).json()["models"]) == 2, timeout=60,
                   what="the stand-in's two agents")
        remote.update(host="127.0.0.1", port=int(serve.rsplit(":", 1)[1]))
        settings["agents_directory"] = str(tmp_path / "no-local-agents")
        url = stack.enter_context(front_door(settings, tmp_path, token=ADMIN))
        client = ollama.Client(host=url, timeout=30)
        assert sorted(m.model for m in client.list().models) == ["Writer.v2:latest", "echo:latest"]
        for name in names:
            reply = client.chat(model=name, messages=[{"role": "user", "content": "/system"}])
            assert reply.message.content == f"You are {name}."
            status = httpx.get(f"{url}/agent/{name}/atoll/status", timeout=10)  # the prefix is kept
            assert status.status_code == 200 and status.json()["agent"]["name"] == name, status.text
        remotes = httpx.get(f"{url}/remote", timeout=10, headers={"Authorization": f"Bearer {ADMIN}"})
        # a Serve ingress has no management API: its health is its state (the stand-in's /agents,
        # which wants another token, is never asked)
        assert [(r["name"], r["state"], r["error"]) for r in remotes.json()["remote_servers"]] == [
            ("ray", "running", None)]
