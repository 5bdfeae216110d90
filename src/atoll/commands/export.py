"""``atoll export k8s``: write Kubernetes manifests for a folder of agents."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atoll.cli import Subparsers


def register(modes: Subparsers) -> None:
    parser = modes.add_parser("export", help="write the agents out for another platform (Kubernetes)",
                              description="Write the agents of a folder out for another platform.")
    targets = parser.add_subparsers(dest="target", required=True, metavar="k8s")
    k8s = targets.add_parser(
        "k8s", help="Kubernetes manifests for the agents (--ray: a KubeRay RayService)", description=(
            "Kubernetes manifests: per agent a ConfigMap, Deployment, Service, NetworkPolicy and (when it "
            "autoscales) an HPA; one front door; kustomization.yaml; SECRETS.md naming the Secrets to create. "
            "$VAR references become Secret references, never values. --ray: one KubeRay RayService instead."))
    k8s.add_argument("--agents-dir", type=Path, default=Path("atoll_agents"),
                     help="folder of agent folders (default ./atoll_agents)")
    k8s.add_argument("-o", "--output", type=Path, default=Path("k8s"), help="output folder (default ./k8s)")
    k8s.add_argument("--image", help="container image built from the repository's Dockerfile "
                     "(default atoll:<version>)")
    k8s.add_argument("--namespace", help="namespace for every object (and a Namespace manifest)")
    k8s.add_argument("--ray", action="store_true",
                     help="one KubeRay RayService running every agent on Ray Serve (with the same Serve config "
                     "as `atoll --backend ray`) instead of a Deployment per agent")
    k8s.add_argument("--ray-version", help="with --ray: the Ray version in the image (default: the installed Ray's)")
    k8s.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from atoll.errors import ConfigError
    from atoll.export import k8s_ray
    from atoll.export.agents import agents_to_export
    from atoll.export.k8s import DEFAULT_IMAGE, render, write

    try:
        agents = agents_to_export(args.agents_dir)
        image = args.image or DEFAULT_IMAGE
        files = k8s_ray.render(agents, image, args.namespace, args.ray_version) if args.ray \
            else render(agents, image=image, namespace=args.namespace)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in write(files, args.output):
        print(path)
    print(f"{len(agents)} agent(s); create the Secrets in {args.output / 'SECRETS.md'}, then: "
          f"kubectl apply -k {args.output}")
    return 0
