#!/usr/bin/env bash
# What `make bench` needs besides the project's venv (idempotent; quick when already installed):
# - wrk, the HTTP load generator the gateway and chat benchmarks drive;
# - the LiteLLM proxy, the gateway benchmark's baseline, in a venv of its own (.bench-venv/litellm)
#   so it never mixes with atoll's dependencies. Pinned: 1.82.7 and 1.82.8 on PyPI were compromised
#   (credential-stealing .pth, March 2026); 1.82.6 is the last release before them.
set -euo pipefail
cd "$(dirname "$0")/.."
LITELLM_VERSION=1.82.6

if ! command -v wrk >/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get install -y wrk >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi

VENV=.bench-venv/litellm
if [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null)" != "$LITELLM_VERSION" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet "litellm[proxy]==$LITELLM_VERSION"
fi
