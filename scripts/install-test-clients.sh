#!/usr/bin/env bash
# Install client libraries the tests drive that are not Python packages, pinned, under
# .test-clients/ (gitignored): ollama-js, the official JavaScript client, and the MCP Inspector (its CLI
# mode drives the agents' MCP servers). A stamp file holding the
# pins makes a re-run a no-op until a pin changes. Usage: scripts/install-test-clients.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.test-clients"
STAMP="$DEST/.stamp"
NPM_PACKAGES=("ollama@0.6.4" "@modelcontextprotocol/inspector@2.12.0")
wanted="npm: ${NPM_PACKAGES[*]}"

if [[ "${1:-}" != "--force" && -f "$STAMP" && "$(cat "$STAMP")" == "$wanted" \
      && -d "$DEST/node_modules/ollama" && -d "$DEST/node_modules/@modelcontextprotocol/inspector" ]]; then
  exit 0
fi
command -v npm >/dev/null || { echo "error: npm (Node.js >= 20) is needed for the test clients" >&2; exit 1; }
mkdir -p "$DEST"
npm install --prefix "$DEST" --no-audit --no-fund --loglevel=error "${NPM_PACKAGES[@]}"
echo "$wanted" > "$STAMP"
