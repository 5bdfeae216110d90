#!/usr/bin/env bash
# Install the browser the UI tests drive: Debian's Chromium (Playwright cannot download its own
# browsers here; the tests launch this one by path). Playwright for Python itself comes from the
# `test` extra in pyproject.toml. A no-op when Chromium is already installed.
# Usage: scripts/install-browser.sh
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
  echo "error: Chromium is missing; install it with: sudo apt-get install -y chromium" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium
