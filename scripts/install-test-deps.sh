#!/usr/bin/env bash
# Installs the real clients the front-end tests drive, when missing:
#   - tmux (the terminal `top` is tested in),
#   - Debian's `prometheus` package (the Prometheus server and `promtool`),
#   - python3-venv, and a virtual environment at target/test-venv holding
#     `prometheus_client` from PyPI (the reference OpenMetrics and text
#     parsers),
#   - gcc-multilib (the 32-bit C runtime that links the i686 tests of
#     scripts/test, which read every 64-bit word as two 32-bit halves).
# Debian packages need root (CI runs as root); the virtual environment does
# not. Prints the environment for the tests on its last line
# (`VSTATS_PYTHON=...`); exits 1 when something could not be installed.
set -uo pipefail
cd "$(dirname "$0")/.."

PROMETHEUS_CLIENT_VERSION=0.21.1
venv=target/test-venv

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in tmux prometheus python3-venv gcc-multilib; do
  have_pkg "$p" || missing+=("$p")
done
have_pkg pkg-config || missing+=(pkg-config) # capi/tests/install.rs builds C against the installed library with it
if [ ${#missing[@]} != 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test clients missing (${missing[*]}) and not root: not installing" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt_q() { apt-get -q -o Dpkg::Use-Pty=0 "$@"; }
  apt_q update >/dev/null || { echo "apt-get update failed" >&2; exit 1; }
  # The package's own service is not wanted (the tests start their own
  # server on a free port): policy-rc.d keeps invoke-rc.d from starting it.
  had_policy=0
  [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  [ $had_policy = 1 ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt_q install -y --no-install-recommends "${missing[@]}" >/dev/null
  rc=$?
  [ $had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d
  [ $rc = 0 ] || { echo "installing ${missing[*]} failed" >&2; exit 1; }
fi

# Debian's interpreter, which python3-venv belongs to (a pyenv shim earlier
# on PATH may lack ensurepip).
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
if ! "$venv/bin/python" -c "import prometheus_client" 2>/dev/null \
   || [ "$("$venv/bin/pip" show prometheus_client 2>/dev/null | sed -n 's/^Version: //p')" != "$PROMETHEUS_CLIENT_VERSION" ]; then
  rm -rf "$venv"
  "$py" -m venv "$venv" || { echo "creating $venv failed" >&2; exit 1; }
  "$venv/bin/pip" install -q --disable-pip-version-check "prometheus_client==$PROMETHEUS_CLIENT_VERSION" \
    || { echo "pip install prometheus_client failed" >&2; exit 1; }
fi
echo "VSTATS_PYTHON=$PWD/$venv/bin/python"
