"""``atoll export k8s --ray``: the agents as one KubeRay ``RayService`` instead of a Deployment each.

Its ``serveConfigV2`` is the Serve config the Ray backend deploys (:mod:`atoll.ray.serve_config`):
every agent its own application at ``/agent/<name>``, the ingress at ``/``. Its Ray cluster is a
head and one worker group, running the image from ``--image`` as user 10001 with a read-only root;
Ray token authentication is on (KubeRay ``authOptions``, its token in a Secret KubeRay makes), the
Services stay ClusterIP with no Ingress, and a NetworkPolicy lets in only the Ray pods themselves,
the front door (Serve's port) and the KubeRay operator (dashboard, dashboard agent, Serve): the
dashboard faces nothing else.

The agents' files are ConfigMaps mounted in every Ray pod at ``/etc/atoll/agents/<agent>/``; every
``$VAR`` they use is an environment variable of the Ray pods from the one Secret ``atoll-ray-env``
(replicas of any agent may run in any pod, so they share one environment, as agents do under one
deployment server). The front door is the one of ``atoll export k8s``, with the Serve Service as its
one remote (``kind: serve``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import yaml

from atoll.deploy.config import DeploymentConfig
from atoll.errors import ConfigError
from atoll.export import k8s
from atoll.export.agents import ExportedAgent
from atoll.export.k8s import CONFIG_DIR, FRONT_DOOR_PORT, Manifest
from atoll.ray.serve_config import agent_application, ingress_application, ingress_settings, serve_config

SERVICE = "atoll"
#: The Service KubeRay makes for a RayService's Serve proxies.
SERVE_SERVICE = f"{SERVICE}-serve-svc"
SERVE_PORT = 8000
ENV_SECRET = "atoll-ray-env"
AGENTS_DIR = f"{CONFIG_DIR}/agents"
#: Ports the KubeRay operator calls: the dashboard (Serve config, status), its agent, Serve's health.
OPERATOR_PORTS = (8265, 52365, SERVE_PORT)
OPERATOR_LABELS = {"app.kubernetes.io/name": "kuberay-operator"}
#: Requests and limits of each Ray pod (Ray sizes its node from the limits).
HEAD_RESOURCES = {"cpu": "1", "memory": "2Gi"}
WORKER_RESOURCES = {"cpu": "1", "memory": "2Gi"}


def ray_version() -> str:
    """The installed Ray's version: the image (built from this checkout) carries the same, and Ray
    refuses to mix versions in one cluster."""
    try:
        return version("ray")
    except PackageNotFoundError:
        raise ConfigError("Ray is not installed here; the RayService names the image's Ray version: "
                          "install atoll with Ray or pass --ray-version", field="--ray-version") from None


def agent_folder(agent: ExportedAgent) -> str:
    return f"{AGENTS_DIR}/{agent.slug}"


def serve_config_of(agents: list[ExportedAgent]) -> dict[str, Any]:
    """The Serve config the RayService deploys: the agents' files read from their ConfigMaps, the
    proxy listening in the pod (the NetworkPolicy decides who reaches it)."""
    apps = [agent_application(a.agent_file, a.config, session_url_env=k8s.session_url_env(a),
                              read_from=f"{agent_folder(a)}/{a.agent_file.name}") for a in agents]
    ingress = ingress_application({"front": ingress_settings(DeploymentConfig(), SERVE_PORT)})
    return serve_config([*apps, ingress], host="0.0.0.0", port=SERVE_PORT, proxy_location="EveryNode")


def _ray_env(agents: list[ExportedAgent]) -> list[dict[str, Any]]:
    """``$ATOLL_HOME`` and every variable any agent's files use, from ``atoll-ray-env`` (optional
    when every reference to it has a default)."""
    variables: dict[str, bool] = {}
    for agent in agents:
        for name, has_default in agent.variables.items():
            variables[name] = variables.get(name, True) and has_default
    env = k8s.base_env()
    for name, has_default in sorted(variables.items()):
        ref: dict[str, Any] = {"name": ENV_SECRET, "key": name}
        if has_default:
            ref["optional"] = True
        env.append({"name": name, "valueFrom": {"secretKeyRef": ref}})
    return env


def _pod(agents: list[ExportedAgent], image: str, role: str, resources: dict[str, str],
         ports: list[dict[str, Any]]) -> dict[str, Any]:
    """A Ray pod template: non-root, read-only root with writable ``/tmp`` (Ray's sessions, runtime
    environments), ``$ATOLL_HOME`` and ``/dev/shm`` (the object store), every agent's files."""
    volumes, mounts = k8s.writable_volumes()
    volumes.append({"name": "shm", "emptyDir": {"medium": "Memory"}})
    mounts.append({"name": "shm", "mountPath": "/dev/shm"})
    for agent in agents:
        volumes.append({"name": f"agent-{agent.slug}", "configMap": {"name": f"atoll-{agent.slug}-config"}})
        mounts.append({"name": f"agent-{agent.slug}", "mountPath": agent_folder(agent), "readOnly": True})
    container = {"name": f"ray-{role}", "image": image, "imagePullPolicy": "IfNotPresent",
                 "env": _ray_env(agents), "resources": {"requests": dict(resources), "limits": dict(resources)},
                 "securityContext": k8s.container_security(), "volumeMounts": mounts}
    if ports:
        container["ports"] = ports
    spec: dict[str, Any] = {"securityContext": k8s.pod_security(), "containers": [container], "volumes": volumes}
    if role == "worker":  # the head keeps its token: the autoscaler beside it asks Kubernetes for workers
        spec["automountServiceAccountToken"] = False
    return {"metadata": {"labels": k8s.labels("ray", role)}, "spec": spec}


def worker_counts(agents: list[ExportedAgent]) -> tuple[int, int]:
    """(min, max) worker pods: one to start, at most one per replica the agents may ask for."""
    return 1, max(1, sum(a.config.deployment.most_replicas for a in agents))


def ray_service(agents: list[ExportedAgent], image: str, namespace: str | None, ray_release: str) -> Manifest:
    head_ports = [{"name": "gcs-server", "containerPort": 6379}, {"name": "dashboard", "containerPort": 8265},
                  {"name": "client", "containerPort": 10001}, {"name": "serve", "containerPort": SERVE_PORT}]
    fewest, most = worker_counts(agents)
    return {
        "apiVersion": "ray.io/v1", "kind": "RayService",
        "metadata": k8s.object_meta(SERVICE, namespace, "ray", "ray"),
        "spec": {
            "serveConfigV2": yaml.safe_dump(serve_config_of(agents), sort_keys=False),
            "rayClusterConfig": {
                "rayVersion": ray_release,
                "authOptions": {"mode": "token"},
                "enableInTreeAutoscaling": True,
                # the autoscaler beside the head: unprivileged, its root left writable (it is Ray's image code)
                "autoscalerOptions": {"upscalingMode": "Default", "idleTimeoutSeconds": 60,
                                      "securityContext": {**k8s.container_security(),
                                                          "readOnlyRootFilesystem": False}},
                "headGroupSpec": {"serviceType": "ClusterIP", "rayStartParams": {},
                                  "template": _pod(agents, image, "head", HEAD_RESOURCES, head_ports)},
                "workerGroupSpecs": [{"groupName": "agents", "replicas": fewest, "minReplicas": fewest,
                                      "maxReplicas": most, "rayStartParams": {},
                                      "template": _pod(agents, image, "worker", WORKER_RESOURCES, [])}],
            },
        },
    }


def network_policy(namespace: str | None) -> Manifest:
    """Into the Ray pods: each other (any port), the front door (Serve), the KubeRay operator."""
    ray_pods = {"app.kubernetes.io/component": "ray", "app.kubernetes.io/part-of": "atoll"}
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": k8s.object_meta(f"{SERVICE}-ray", namespace, "ray", "ray"),
        "spec": {"podSelector": {"matchLabels": ray_pods}, "policyTypes": ["Ingress"], "ingress": [
            {"from": [{"podSelector": {"matchLabels": ray_pods}}]},
            {"from": [{"podSelector": {"matchLabels": k8s.selector("front-door", "front-door")}}],
             "ports": [{"port": SERVE_PORT, "protocol": "TCP"}]},
            {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": OPERATOR_LABELS}}],
             "ports": [{"port": port, "protocol": "TCP"} for port in OPERATOR_PORTS]},
        ]},
    }


def agent_config_maps(agents: list[ExportedAgent], namespace: str | None) -> list[Manifest]:
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": k8s.object_meta(f"atoll-{a.slug}-config", namespace, "agent", a.slug), "data": a.raw_files()}
            for a in agents]


def front_door_settings() -> dict[str, Any]:
    """The front door's settings: the Serve Service as its one remote, which lists and serves every agent."""
    return {"host": "0.0.0.0", "api_port": FRONT_DOOR_PORT, "agents_directory": f"{k8s.STATE_DIR}/agents",
            "remote_servers": [{"name": "ray", "kind": "serve", "host": SERVE_SERVICE, "port": SERVE_PORT,
                                "description": "the agents on Ray Serve (RayService atoll)"}]}


def secrets_note(agents: list[ExportedAgent], namespace: str | None) -> str:
    ns = f" -n {namespace}" if namespace else ""
    variables = sorted({name for agent in agents for name in agent.variables})
    lines = ["# Secrets to create before `kubectl apply -k .`", "",
             "The manifests refer to these Secrets by name and key; their values never go in the files.",
             "Replace each `...` with the value. Every Ray pod gets every agent's variables.", "", "```sh",
             f"kubectl{ns} create secret generic {k8s.ADMIN_SECRET} --from-literal=token=\"$(openssl rand -hex 32)\""]
    if variables:
        literals = " ".join(f"--from-literal={name}=..." for name in variables)
        lines.append(f"kubectl{ns} create secret generic {ENV_SECRET} {literals}")
    lines += ["```", "", "Ray's own token (`authOptions`) is generated by the KubeRay operator (v1.5.1 or later) "
              "into a Secret of its own."]
    return "\n".join(lines) + "\n"


def render(agents: list[ExportedAgent], image: str = k8s.DEFAULT_IMAGE, namespace: str | None = None,
           ray_release: str | None = None) -> dict[str, str]:
    """File name -> content for the output folder."""
    files = {"agents.yaml": k8s.dump(agent_config_maps(agents, namespace)),
             "ray-service.yaml": k8s.dump([ray_service(agents, image, namespace, ray_release or ray_version())]),
             "ray-network.yaml": k8s.dump([network_policy(namespace)]),
             "front-door.yaml": k8s.dump(k8s.front_door_manifests(front_door_settings(), image, namespace))}
    return k8s.package(files, namespace, secrets_note(agents, namespace))
