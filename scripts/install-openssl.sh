#!/usr/bin/env bash
# The openssl command line (Debian package) for the tests that make a self-signed certificate
# (tests/support/tls.py) and talk HTTPS to real servers. A no-op once installed.
set -euo pipefail

command -v openssl >/dev/null && exit 0
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends openssl
