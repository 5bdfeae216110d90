"""``atoll export k8s``: Kubernetes manifests for a folder of agents.

Per agent: a ConfigMap with its files as written (``$VAR`` references unexpanded), a Deployment
running ``atoll server`` on them (probes on ``/health``, resources, a drain before the pod goes,
non-root and read-only), a Service, a NetworkPolicy letting only the front door in, and an HPA when
the agent asks for autoscaling. Every ``$VAR`` becomes an environment variable read from the
agent's Secret ``atoll-<agent>-env``, which the exporter never writes: values stay out of the files.

One front door (the deployment server with no local agents) lists and routes to the agents'
Services, configured statically in its ConfigMap; its admin token comes from the Secret
``atoll-admin-token``. A ``kustomization.yaml`` lists it all.

An agent with more than one replica must keep its sessions in Redis: with SQLite or memory each pod
has its own sessions, and a conversation whose next turn reaches another pod would lose its history.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from atoll import replicas
from atoll._version import __version__
from atoll.config import read_document
from atoll.export.agents import ExportedAgent

Manifest = dict[str, Any]

AGENT_PORT = 8100
FRONT_DOOR_PORT = 8080
STATE_DIR = "/var/lib/atoll"
CONFIG_DIR = "/etc/atoll"
ADMIN_SECRET = "atoll-admin-token"
RUN_AS = 10001
DEFAULT_IMAGE = f"atoll:{__version__}"
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def object_meta(name: str, namespace: str | None, component: str, instance: str, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, "labels": labels(component, instance)}
    if namespace:
        result["namespace"] = namespace
    return result | extra


def labels(component: str, instance: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "atoll", "app.kubernetes.io/component": component,
            "app.kubernetes.io/instance": instance, "app.kubernetes.io/part-of": "atoll"}


def selector(component: str, instance: str) -> dict[str, str]:
    return {"app.kubernetes.io/component": component, "app.kubernetes.io/instance": instance}


def pod_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "timeoutSeconds": 2,
            "failureThreshold": failures}


def writable_volumes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """$ATOLL_HOME (sessions, logs) and /tmp as emptyDirs: the root filesystem is read-only."""
    volumes = [{"name": "state", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    mounts = [{"name": "state", "mountPath": STATE_DIR}, {"name": "tmp", "mountPath": "/tmp"}]
    return volumes, mounts


def base_env() -> list[dict[str, Any]]:
    return [{"name": "ATOLL_HOME", "value": STATE_DIR}, {"name": "HOME", "value": STATE_DIR}]


def _checksum(data: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def secret_name(agent: ExportedAgent) -> str:
    return f"atoll-{agent.slug}-env"


def session_url_env(agent: ExportedAgent) -> bool:
    """Whether the agent's ``[deployment] env`` gives it ``ATOLL_SESSION_URL`` (then, with no
    ``session_store`` in its file, it keeps its sessions in that Redis)."""
    return "ATOLL_SESSION_URL" in _written_deployment_env(agent)


def check_replicas(agent: ExportedAgent) -> None:
    """Refuse more than one pod of an agent whose sessions live in each pod."""
    replicas.check_replicas(agent.config, agent.agent_file, session_url_env=session_url_env(agent))


def _agent_env(agent: ExportedAgent) -> list[dict[str, Any]]:
    env = base_env()
    for name, has_default in agent.variables.items():
        ref: dict[str, Any] = {"name": secret_name(agent), "key": name}
        if has_default:
            ref["optional"] = True
        env.append({"name": name, "valueFrom": {"secretKeyRef": ref}})
    # [deployment] env as written; its $VAR references become Kubernetes' $(VAR), set just above
    written = _written_deployment_env(agent)
    env += [{"name": key, "value": _REFERENCE.sub(lambda m: f"$({m.group(1) or m.group(2)})", value)}
            for key, value in written.items()]
    return env


def _written_deployment_env(agent: ExportedAgent) -> dict[str, str]:
    section = read_document(agent.agent_file).get("deployment", {})
    env = section.get("env", {}) if isinstance(section, dict) else {}
    return {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}


def _resources(agent: ExportedAgent) -> dict[str, Any]:
    limits = agent.config.resources
    memory_mb = 256 if limits.max_memory_mb is None else min(256, limits.max_memory_mb)
    resources: dict[str, Any] = {"requests": {"cpu": "250m", "memory": f"{memory_mb}Mi"}}
    caps: dict[str, str] = {}
    if limits.max_memory_mb is not None:
        caps["memory"] = f"{limits.max_memory_mb}Mi"
    if limits.max_cpu_percent is not None:
        millicores = max(1, round(limits.max_cpu_percent * 10))
        caps["cpu"] = f"{millicores}m"
        resources["requests"]["cpu"] = f"{min(250, millicores)}m"
    if caps:
        resources["limits"] = caps
    return resources


def agent_manifests(agent: ExportedAgent, image: str, namespace: str | None) -> list[Manifest]:
    check_replicas(agent)
    config, name, slug = agent.config, f"atoll-{agent.slug}", agent.slug
    files = agent.raw_files()
    config_map: Manifest = {"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": object_meta(f"{name}-config", namespace, "agent", slug), "data": files}
    volumes, mounts = writable_volumes()
    volumes.append({"name": "agent", "configMap": {"name": f"{name}-config"}})
    mounts.append({"name": "agent", "mountPath": f"{CONFIG_DIR}/agent", "readOnly": True})
    startup = config.deployment.startup_timeout
    container = {
        "name": "agent", "image": image, "imagePullPolicy": "IfNotPresent",
        "command": ["atoll", "server", "--host", "0.0.0.0", "--port", str(AGENT_PORT),
                    "--agent", f"{CONFIG_DIR}/agent/{agent.agent_file.name}", "--log-format", "json"],
        "workingDir": f"{CONFIG_DIR}/agent",  # where the agent server looks for mcp.json
        "ports": [{"name": "http", "containerPort": AGENT_PORT, "protocol": "TCP"}],
        "env": _agent_env(agent),
        "resources": _resources(agent),
        "startupProbe": _probe("/health", 2, max(3, math.ceil(startup / 2))),
        "readinessProbe": _probe("/health", 5, 2),
        "livenessProbe": _probe("/health", 10, 3),
        # endpoints drop the pod first, then SIGTERM drains what is in flight (drain_timeout)
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        "securityContext": container_security(),
        "volumeMounts": mounts,
    }
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector("agent", slug)},
        "template": {
            "metadata": {"labels": labels("agent", slug), "annotations": {"checksum/config": _checksum(files)}},
            "spec": {"automountServiceAccountToken": False, "securityContext": pod_security(),
                     "terminationGracePeriodSeconds": math.ceil(config.server.drain_timeout) + 10,
                     "containers": [container], "volumes": volumes},
        },
    }
    if not config.deployment.autoscaling:
        spec["replicas"] = config.deployment.replicas  # with an HPA, the HPA owns the count
    manifests: list[Manifest] = [
        config_map,
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": object_meta(name, namespace, "agent", slug),
         "spec": spec},
        {"apiVersion": "v1", "kind": "Service", "metadata": object_meta(name, namespace, "agent", slug),
         "spec": {"selector": selector("agent", slug),
                  "ports": [{"name": "http", "port": AGENT_PORT, "targetPort": "http", "protocol": "TCP"}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": object_meta(name, namespace, "agent", slug),
         "spec": {"podSelector": {"matchLabels": selector("agent", slug)}, "policyTypes": ["Ingress"],
                  "ingress": [{"from": [{"podSelector": {"matchLabels": selector("front-door", "front-door")}}],
                               "ports": [{"port": AGENT_PORT, "protocol": "TCP"}]}]}},
    ]
    if config.deployment.autoscaling:
        manifests.append(hpa(agent, namespace))
    return manifests


def hpa(agent: ExportedAgent, namespace: str | None) -> Manifest:
    deployment, name = agent.config.deployment, f"atoll-{agent.slug}"
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(name, namespace, "agent", agent.slug),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": deployment.min_replicas or 1,
            "maxReplicas": deployment.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": deployment.target_cpu_percent}}}],
        },
    }


def front_door_settings(agents: list[ExportedAgent]) -> dict[str, Any]:
    """The front door's ``deployment_servers.json``: every agent's Service as a remote it routes to
    by model name. The admin token is not in it: ``ATOLL_ADMIN_TOKEN`` comes from a Secret."""
    return {
        "host": "0.0.0.0", "api_port": FRONT_DOOR_PORT, "agents_directory": f"{STATE_DIR}/agents",
        "remote_servers": [{"name": a.name, "kind": "agent", "host": f"atoll-{a.slug}", "port": AGENT_PORT,
                            "description": f"agent {a.name}"} for a in agents],
    }


def front_door_manifests(settings: dict[str, Any], image: str, namespace: str | None) -> list[Manifest]:
    """The front door running ``atoll deployment`` on ``settings`` (its ``deployment_servers.json``)."""
    files = {"deployment_servers.json": json.dumps(settings, indent=2) + "\n"}
    volumes, mounts = writable_volumes()
    volumes.append({"name": "settings", "configMap": {"name": "atoll-front-door-config"}})
    mounts.append({"name": "settings", "mountPath": f"{CONFIG_DIR}/front-door", "readOnly": True})
    env = [*base_env(), {"name": "ATOLL_ADMIN_TOKEN",
                          "valueFrom": {"secretKeyRef": {"name": ADMIN_SECRET, "key": "token"}}}]
    container = {
        "name": "front-door", "image": image, "imagePullPolicy": "IfNotPresent",
        "command": ["atoll", "deployment", "--config", f"{CONFIG_DIR}/front-door/deployment_servers.json",
                    "--log-format", "json"],
        "ports": [{"name": "http", "containerPort": FRONT_DOOR_PORT, "protocol": "TCP"}],
        "env": env,
        "resources": {"requests": {"cpu": "100m", "memory": "96Mi"}, "limits": {"memory": "256Mi"}},
        "startupProbe": _probe("/health", 2, 15),
        "readinessProbe": _probe("/health", 5, 2),
        "livenessProbe": _probe("/health", 10, 3),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        "securityContext": container_security(),
        "volumeMounts": mounts,
    }
    meta = object_meta("atoll-front-door", namespace, "front-door", "front-door")
    return [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": object_meta("atoll-front-door-config", namespace, "front-door", "front-door"), "data": files},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector("front-door", "front-door")},
            "template": {
                "metadata": {"labels": labels("front-door", "front-door"),
                             "annotations": {"checksum/config": _checksum(files)}},
                "spec": {"automountServiceAccountToken": False, "securityContext": pod_security(),
                         "terminationGracePeriodSeconds": 30, "containers": [container], "volumes": volumes},
            }}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"selector": selector("front-door", "front-door"),
                  "ports": [{"name": "http", "port": FRONT_DOOR_PORT, "targetPort": "http", "protocol": "TCP"}]}},
    ]


def secrets_note(agents: list[ExportedAgent], namespace: str | None) -> str:
    """How to create the Secrets the manifests refer to (names and keys only, never values)."""
    ns = f" -n {namespace}" if namespace else ""
    lines = ["# Secrets to create before `kubectl apply -k .`", "",
             "The manifests refer to these Secrets by name and key; their values never go in the files.",
             "Replace each `...` with the value.", "", "```sh",
             f"kubectl{ns} create secret generic {ADMIN_SECRET} --from-literal=token=\"$(openssl rand -hex 32)\""]
    for agent in agents:
        if agent.variables:
            literals = " ".join(f"--from-literal={name}=..." for name in agent.variables)
            lines.append(f"kubectl{ns} create secret generic {secret_name(agent)} {literals}")
    return "\n".join([*lines, "```"]) + "\n"


def render(agents: list[ExportedAgent], image: str = DEFAULT_IMAGE,
           namespace: str | None = None) -> dict[str, str]:
    """File name -> content for the output folder."""
    files = {f"agent-{agent.slug}.yaml": dump(agent_manifests(agent, image, namespace)) for agent in agents}
    files["front-door.yaml"] = dump(front_door_manifests(front_door_settings(agents), image, namespace))
    return package(files, namespace, secrets_note(agents, namespace))


def package(files: dict[str, str], namespace: str | None, secrets: str) -> dict[str, str]:
    """``files`` (manifests) with the Namespace, a ``kustomization.yaml`` listing them and ``SECRETS.md``."""
    files = dict(files)
    if namespace:
        files["namespace.yaml"] = dump([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}])
    kustomization: Manifest = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                               "resources": sorted(files)}
    if namespace:
        kustomization["namespace"] = namespace
    return files | {"kustomization.yaml": dump([kustomization]), "SECRETS.md": secrets}


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the agents' files) as literal blocks, readable in review."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def dump(manifests: list[Manifest]) -> str:
    return str(yaml.dump_all(manifests, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120))


def write(files: dict[str, str], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in files.items():
        path = out_dir / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written
