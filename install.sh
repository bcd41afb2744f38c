#!/usr/bin/env bash
# Install hvcheck on this host and leave `hvcheck` on PATH. Run as root from a checkout.
# Debian/Ubuntu: build the native package from this tree on the distribution's own libraries
# (python3-click, -psutil, -pyudev, -distro, -rich) and install it with apt: nothing comes from
# PyPI. Uninstall with `apt-get remove hvcheck`.
# Elsewhere: say so, and fall back to a virtualenv in /opt/hvcheck (linked as
# /usr/local/bin/hvcheck) that pip fills from PyPI. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
src=$(pwd)

if [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends dpkg-dev
  apt-get build-dep -y -q ./   # the Build-Depends of debian/control
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # build from a copy: dpkg-buildpackage writes its results beside the tree it builds
  mkdir "$work/hvcheck"
  tar -C "$src" --exclude=./.git --exclude=./.venv --exclude='*.egg-info' --exclude=./build \
      --exclude=__pycache__ -cf - . | tar -C "$work/hvcheck" -xf -
  # with the distribution's python3 (not a pyenv/venv one that may come first on PATH)
  (cd "$work/hvcheck" && PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -us -uc -b \
      >"$work/build.log" 2>&1) || {
    tail -n 40 "$work/build.log" >&2; echo "install.sh: the package build failed" >&2; exit 1; }
  deb=$(ls "$work"/hvcheck_*_all.deb)
  # an earlier venv install (/usr/local/bin comes first on PATH) would hide the package's command
  if [ "$(readlink /usr/local/bin/hvcheck 2>/dev/null)" = /opt/hvcheck/bin/hvcheck ]; then
    rm -f /usr/local/bin/hvcheck
  fi
  apt-get install -y -q --no-install-recommends "$deb"
  mkdir -p dist && cp "$deb" dist/
  echo "installed: $(hvcheck --version) from $(basename "$deb") (also kept in dist/); remove with: apt-get remove hvcheck"
else
  echo "install.sh: this is not a Debian-family host; installing into a virtualenv in /opt/hvcheck instead (from PyPI)" >&2
  python3 -m venv /opt/hvcheck
  /opt/hvcheck/bin/pip install -q --upgrade pip
  /opt/hvcheck/bin/pip install -q .
  ln -sf /opt/hvcheck/bin/hvcheck /usr/local/bin/hvcheck
  echo "installed: $(/usr/local/bin/hvcheck --version) in /opt/hvcheck"
fi
