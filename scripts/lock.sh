#!/usr/bin/env bash
# Regenerate the hashed lock files that `make install` and `make test` install from, after a change
# to the dependencies in pyproject.toml (a test fails while they disagree). Needs `uv` (pip install uv).
#   requirements/runtime.lock  the server with the embedded model: dependencies + [local]
#   requirements/test.lock     everything the tests need: dependencies + every extra
# Usage: scripts/lock.sh [--upgrade]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
command -v uv >/dev/null || { echo "error: scripts/lock.sh needs uv: pip install uv" >&2; exit 1; }
common=(--universal --python-version 3.11 --generate-hashes --quiet --no-header "$@")
uv pip compile pyproject.toml --all-extras "${common[@]}" -o requirements/test.lock
# The runtime set is the test set's subset at the same versions, so one venv can hold both.
uv pip compile pyproject.toml --extra local --constraint requirements/test.lock "${common[@]}" \
  -o requirements/runtime.lock
echo "wrote requirements/runtime.lock and requirements/test.lock"
