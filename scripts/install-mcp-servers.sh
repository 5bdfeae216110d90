#!/usr/bin/env bash
# Install the real MCP servers the tests run, each kind in an environment of its own under
# .mcp-servers/ (gitignored):
#   .mcp-servers/npm  npm prefix: server-everything, server-filesystem
#   .mcp-servers/py   Python venv: mcp-server-time, mcp-server-git
# The PyPI servers get their own venv, never the project's .venv: they pin `mcp` versions of
# their own. Versions are pinned; a stamp file holding the pins makes a re-run a no-op until a
# pin changes. Usage: scripts/install-mcp-servers.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.mcp-servers"
STAMP="$DEST/.stamp"
PYTHON="${PYTHON:-python3}"

NPM_PACKAGES=(
  "@modelcontextprotocol/server-everything@2026.8.31"
  "@modelcontextprotocol/server-filesystem@2026.8.31"
)
PY_PACKAGES=(
  "mcp-server-time==2026.10.19"
  "mcp-server-git==2026.10.19"
)

wanted="npm: ${NPM_PACKAGES[*]}; py: ${PY_PACKAGES[*]}"

installed() {
  [[ -f "$STAMP" && "$(cat "$STAMP")" == "$wanted" ]] \
    && [[ -f "$DEST/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js" ]] \
    && [[ -x "$DEST/py/bin/mcp-server-time" ]]
}

if [[ "${1:-}" != "--force" ]] && installed; then
  echo "MCP servers already installed in $DEST"
  exit 0
fi

command -v npm >/dev/null || { echo "install-mcp-servers: npm is required (apt-get install npm)" >&2; exit 1; }

mkdir -p "$DEST"
rm -f "$STAMP"

echo "Installing npm MCP servers into $DEST/npm"
npm install --prefix "$DEST/npm" --no-audit --no-fund --no-save --loglevel=error "${NPM_PACKAGES[@]}"

echo "Installing PyPI MCP servers into $DEST/py (own venv)"
[[ -x "$DEST/py/bin/python" ]] || "$PYTHON" -m venv "$DEST/py"
"$DEST/py/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"

echo "$wanted" > "$STAMP"
echo "MCP servers installed in $DEST"
