#!/usr/bin/env bash
# Install redis-server (Debian package) for the tests that keep sessions in Redis; the suite starts
# its own instance on a free loopback port (tests/support/redis_server.py). A no-op once installed.
set -euo pipefail

command -v redis-server >/dev/null && exit 0
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends redis-server
