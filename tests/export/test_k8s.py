"""``atoll export k8s``: the manifests pass ``kubernetes-validate --strict`` for Kubernetes 1.33, carry
Secret references and never values, follow the agents' scaling settings, refuse several pods with
per-pod sessions, and the front door's rendered settings really route (a real deployment server with
that file, two real agent servers behind it, the official ollama client in front).

kustomization.yaml is not a Kubernetes object, so kubernetes-validate has no schema for it; it is
checked as YAML against the fields kustomize documents (apiVersion, kind, resources, namespace).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
import yaml

from tests.support.servers import (
    REPO,
    free_port,
    run_agent_server,
    scripted_agent_toml,
    server_env,
    wait_healthy,
)
from tests.support.servers import (
    write_agent as write_file,
)

VALIDATOR = Path(sys.executable).parent / "kubernetes-validate"
SECRET_VALUE = "sk-live-do-not-leak-4242"


def export(agents_dir: Path, out: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "atoll", "export", "k8s", "--agents-dir", str(agents_dir),
                           "-o", str(out), *extra], capture_output=True, text=True, timeout=60,
                          env=server_env(**env), cwd=REPO)


def objects(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in sorted(out.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def sample_agents(root: Path, *, scaling: str = "min_replicas = 2\nmax_replicas = 5\n") -> Path:
    agents = root / "agents"
    write_file(agents / "echo", scripted_agent_toml("echo", extra=(
        '[server]\nsession_store = "redis"\nsession_url = "$REDIS_URL"\napi_keys = ["${ATOLL_KEY:-}"]\n'
        f'[llm.extra]\ntoken = "$OPENAI_KEY"\n[deployment]\n{scaling}'
        'env = { GREETING = "hi", TOKEN = "${OPENAI_KEY}" }\n[resources]\nmax_memory_mb = 512\n')))
    writer = write_file(agents / "Writer.v2", scripted_agent_toml("Writer.v2"))
    (writer.parent / "mcp.json").write_text(json.dumps(
        {"mcpServers": {"gh": {"command": "gh-mcp", "env": {"GH": "${env:GITHUB_TOKEN}"}}}}))
    return agents


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    out = root / "k8s"
    done = export(sample_agents(root), out, "--namespace", "agents", "--image", "example.org/atoll:1",
                  OPENAI_KEY=SECRET_VALUE, REDIS_URL="redis://:" + SECRET_VALUE + "@redis:6379/0")
    assert done.returncode == 0, done.stderr
    return out


def test_every_object_passes_strict_validation_for_kubernetes_1_33(rendered: Path) -> None:
    files = sorted(str(p) for p in rendered.glob("*.yaml") if p.name != "kustomization.yaml")
    assert len(files) == 4  # namespace, two agents, front door
    result = subprocess.run([str(VALIDATOR), "--strict", "-k", "1.33.0", *files],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == 1 + 5 + 4 + 3  # the HPA only for the autoscaling agent


def test_kustomization_lists_every_manifest(rendered: Path) -> None:
    kustomization = yaml.safe_load((rendered / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization" and kustomization["namespace"] == "agents"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in rendered.glob("*.yaml")
                                                        if p.name != "kustomization.yaml")
    assert set(kustomization) == {"apiVersion", "kind", "resources", "namespace"}


def test_secrets_are_references_never_values(rendered: Path) -> None:
    for path in rendered.iterdir():
        assert SECRET_VALUE not in path.read_text(), path.name
    found = objects(rendered)
    config = found[("ConfigMap", "atoll-echo-config")]["data"]["agent.toml"]
    assert 'session_url = "$REDIS_URL"' in config  # the file as written
    env = {e["name"]: e for e in found[("Deployment", "atoll-echo")]["spec"]["template"]["spec"]
           ["containers"][0]["env"]}
    assert env["OPENAI_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "atoll-echo-env", "key": "OPENAI_KEY"}
    assert env["ATOLL_KEY"]["valueFrom"]["secretKeyRef"]["optional"] is True  # ${ATOLL_KEY:-} has a default
    assert env["TOKEN"] == {"name": "TOKEN", "value": "$(OPENAI_KEY)"} and env["GREETING"]["value"] == "hi"
    writer = next(d for (kind, _), d in found.items() if kind == "Deployment" and "writer" in d["metadata"]["name"])
    gh = next(e for e in writer["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "GITHUB_TOKEN")
    assert gh["valueFrom"]["secretKeyRef"]["key"] == "GITHUB_TOKEN"  # from mcp.json's ${env:GITHUB_TOKEN}
    front = found[("Deployment", "atoll-front-door")]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "ATOLL_ADMIN_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "atoll-admin-token", "key": "token"}}} in front
    note = (rendered / "SECRETS.md").read_text()
    assert "atoll-admin-token" in note and "--from-literal=OPENAI_KEY=..." in note


def test_pods_are_probed_bounded_drained_and_unprivileged(rendered: Path) -> None:
    found = objects(rendered)
    for (kind, name), doc in found.items():
        assert kind == "Namespace" or doc["metadata"]["namespace"] == "agents", name
        if kind != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
        assert container["resources"]["requests"]["cpu"] and pod["terminationGracePeriodSeconds"] >= 10
        assert container["image"] == "example.org/atoll:1"
    echo = found[("Deployment", "atoll-echo")]
    assert echo["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"memory": "512Mi"}
    assert "replicas" not in echo["spec"]  # the HPA owns the count
    policy = found[("NetworkPolicy", "atoll-echo")]["spec"]
    assert policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "front-door"


def test_changing_the_scaling_settings_changes_the_hpa(tmp_path: Path) -> None:
    def hpa_and_replicas(scaling: str) -> tuple[dict[str, Any] | None, int | None]:
        out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
        root = tmp_path / f"src-{out.name}"
        done = export(sample_agents(root, scaling=scaling), out)
        assert done.returncode == 0, done.stderr
        found = objects(out)
        hpa = found.get(("HorizontalPodAutoscaler", "atoll-echo"))
        return (hpa["spec"] if hpa else None), found[("Deployment", "atoll-echo")]["spec"].get("replicas")

    first, _ = hpa_and_replicas("min_replicas = 2\nmax_replicas = 5\n")
    assert first is not None and (first["minReplicas"], first["maxReplicas"]) == (2, 5)
    assert first["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    second, _ = hpa_and_replicas("max_replicas = 8\ntarget_cpu_percent = 50\n")
    assert second is not None and (second["minReplicas"], second["maxReplicas"]) == (1, 8)
    assert second["metrics"][0]["resource"]["target"]["averageUtilization"] == 50
    assert second["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "atoll-echo"}
    fixed, replicas = hpa_and_replicas("replicas = 3\n")
    assert fixed is None and replicas == 3


@pytest.mark.parametrize("store", ["sqlite", "memory"])
def test_several_pods_with_per_pod_sessions_are_refused(tmp_path: Path, store: str) -> None:
    agents = tmp_path / "agents"
    agent = write_file(agents / "solo", scripted_agent_toml(
        "solo", extra=f'[server]\nsession_store = "{store}"\n[deployment]\nreplicas = 2\n'))
    done = export(agents, tmp_path / "out")
    assert done.returncode == 2 and not (tmp_path / "out").exists()
    assert str(agent) in done.stderr and "deployment.replicas" in done.stderr
    assert f'session_store = "{store}"' in done.stderr and "redis" in done.stderr


def test_atoll_session_url_in_the_deployment_env_shares_sessions(tmp_path: Path) -> None:
    """An agent whose file names no store keeps its sessions in ATOLL_SESSION_URL's Redis when its
    [deployment] env gives it one, so its pods may be several; a store the file names still wins."""
    agents = tmp_path / "agents"
    env = '[deployment]\nreplicas = 2\nenv = { ATOLL_SESSION_URL = "$REDIS_URL" }\n'
    write_file(agents / "shared", scripted_agent_toml("shared", extra=env))
    done = export(agents, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert objects(tmp_path / "out")[("Deployment", "atoll-shared")]["spec"]["replicas"] == 2
    write_file(agents / "shared", scripted_agent_toml("shared", extra='[server]\nsession_store = "sqlite"\n' + env))
    refused = export(agents, tmp_path / "out2")
    assert refused.returncode == 2 and 'session_store = "sqlite"' in refused.stderr


def test_bad_agents_are_all_named_at_once(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    write_file(agents / "a", scripted_agent_toml("a", extra="[deployment]\nmin_replicas = 4\nmax_replicas = 2\n"))
    write_file(agents / "b", "[agent]\nname = 'has space'\n")
    (write_file(agents / "c", scripted_agent_toml("c")).parent / "mcp.json").write_text(
        json.dumps({"mcpServers": {"broken": {"args": ["no command"]}}}))
    done = export(agents, tmp_path / "out")
    assert done.returncode == 2
    assert "min_replicas (4) is above max_replicas (2)" in done.stderr and "agent.name" in done.stderr
    assert str(agents / "c" / "mcp.json") in done.stderr and "servers.broken" in done.stderr


@contextmanager
def front_door(settings: dict[str, Any], folder: Path, token: str) -> Iterator[str]:
    port = free_port()
    path = folder / "deployment_servers.json"
    path.write_text(json.dumps(settings | {"host": "127.0.0.1", "api_port": port}))
    log = folder / "front-door.log"
    with open(log, "w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "atoll", "deployment", "--config", str(path)], cwd=folder,
            env=server_env(ATOLL_HOME=str(folder / "home"), ATOLL_ADMIN_TOKEN=token),
            stdout=sink, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


def test_the_rendered_front_door_routes_to_the_agents_services(rendered: Path, tmp_path: Path) -> None:
    """The front door's ConfigMap as rendered, with one change a cluster makes for us: each
    Service's DNS name resolves to where that agent listens (here two real agent servers)."""
    found = objects(rendered)
    settings = json.loads(found[("ConfigMap", "atoll-front-door-config")]["data"]["deployment_servers.json"])
    names = [remote["name"] for remote in settings["remote_servers"]]
    assert sorted(names) == ["Writer.v2", "echo"]
    with ExitStack() as stack:
        for remote in settings["remote_servers"]:
            folder = tmp_path / remote["name"]
            toml = scripted_agent_toml(remote["name"], extra='[server]\nsession_store = "memory"\n')
            agent = write_file(folder, toml)
            server = stack.enter_context(run_agent_server(agent, cwd=folder))
            remote.update(host="127.0.0.1", port=server.port)  # what the Service name resolves to
        settings["agents_directory"] = str(tmp_path / "no-local-agents")
        url = stack.enter_context(front_door(settings, tmp_path, token="front-door-admin-token"))
        client = ollama.Client(host=url, timeout=30)
        assert sorted(m.model for m in client.list().models) == ["Writer.v2:latest", "echo:latest"]
        for name in names:
            reply = client.chat(model=name, messages=[{"role": "user", "content": "/system"}])
            assert reply.message.content == f"You are {name}."
        assert httpx.get(f"{url}/agents", timeout=10).status_code == 401
        authorised = httpx.get(f"{url}/agents", timeout=10, headers={"Authorization": "Bearer front-door-admin-token"})
        assert authorised.status_code == 200
        for name in names:  # the per-agent prefix reaches each agent's own API
            status = httpx.get(f"{url}/agent/{name}/atoll/status", timeout=10)
            assert status.status_code == 200 and status.json()["agent"]["name"] == name, status.text
        remotes = httpx.get(f"{url}/remote", timeout=10, headers={"Authorization": "Bearer front-door-admin-token"})
        assert [(r["name"], r["state"]) for r in remotes.json()["remote_servers"]] == [
            (name, "running") for name in names]


def test_the_dockerfile_runs_as_the_user_the_manifests_ask_for() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "USER 10001:10001" in dockerfile and 'pip install ".${ATOLL_EXTRAS:+[$ATOLL_EXTRAS]}"' in dockerfile
    assert "ATOLL_HOME=/var/lib/atoll" in dockerfile  # the emptyDir the manifests mount there
