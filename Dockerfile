# The image the manifests of `atoll export k8s` run: `atoll server` for each agent, `atoll deployment`
# for the front door. Build and push it yourself:
#
#     docker build -t registry.example.com/atoll:0.1.0 .
#     atoll export k8s --image registry.example.com/atoll:0.1.0
#
# For `atoll export k8s --ray` (a KubeRay RayService: Ray's head and workers run this image too), add Ray,
# the same version as where you export (the RayService names it, and Ray refuses to mix versions):
#
#     docker build --build-arg ATOLL_EXTRAS=ray -t registry.example.com/atoll-ray:0.1.0 .
#
# It has never been built by this project's CI: the machines it runs on have no container runtime.
#
# Kept to what the manifests need: the `ollama` and `openai` providers (no compiler, so not the
# embedded `local` model: add `.[local]` and build-essential for that), no Node.js (MCP servers
# started with npx need it: add it, or run those servers over HTTP).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# Optional extras of the atoll package, comma-separated (ray, local).
ARG ATOLL_EXTRAS=

WORKDIR /opt/atoll
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".${ATOLL_EXTRAS:+[$ATOLL_EXTRAS]}" \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/atoll --create-home atoll

# The same non-root user the manifests' securityContext asks for; $ATOLL_HOME holds sessions and logs.
USER 10001:10001
ENV ATOLL_HOME=/var/lib/atoll HOME=/var/lib/atoll
WORKDIR /var/lib/atoll
EXPOSE 8100 8080 8000
CMD ["atoll", "--help"]
