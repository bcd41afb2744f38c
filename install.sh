#!/usr/bin/env bash
# Install hvcheck from this checkout into /opt/hvcheck (a venv) and link /usr/local/bin/hvcheck.
# Debian/Ubuntu; run as root. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends python3 python3-venv
fi
python3 -m venv /opt/hvcheck
/opt/hvcheck/bin/pip install -q --upgrade pip
/opt/hvcheck/bin/pip install -q .
ln -sf /opt/hvcheck/bin/hvcheck /usr/local/bin/hvcheck
echo "installed: $(/usr/local/bin/hvcheck --version)"
