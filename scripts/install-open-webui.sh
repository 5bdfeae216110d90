#!/usr/bin/env bash
# Install Open WebUI, pinned, in its own venv under .test-clients/open-webui (gitignored), for the
# real-frontend smoke test tests/clients/test_open_webui.py. CPU torch is installed first from the
# pinned version: a plain `pip install open-webui` would pull a CUDA build of several GB.
# A stamp file holding the pins makes a re-run a no-op until a pin changes.
# Usage: scripts/install-open-webui.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.test-clients/open-webui"
STAMP="$DEST/.stamp"
PYTHON="${PYTHON:-python3}"
TORCH="torch==2.13.0"
OPEN_WEBUI="open-webui==0.12.4"
wanted="$TORCH $OPEN_WEBUI"

if [[ "${1:-}" != "--force" && -f "$STAMP" && "$(cat "$STAMP")" == "$wanted" \
      && -x "$DEST/bin/open-webui" ]]; then
  exit 0
fi
rm -f "$STAMP"
test -x "$DEST/bin/python" || "$PYTHON" -m venv "$DEST"
"$DEST/bin/pip" install --quiet --upgrade pip
"$DEST/bin/pip" install --quiet "$TORCH"
# Keep torch at the CPU build while open-webui's own requirements are resolved.
"$DEST/bin/pip" install --quiet "$OPEN_WEBUI" "$TORCH"
echo "$wanted" > "$STAMP"
