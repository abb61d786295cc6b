#!/usr/bin/env bash
# Installs what the real-Xen test needs, from Debian's packages, when it is
# missing: QEMU (10, from bookworm-backports), Debian's Xen 4.17 hypervisor and
# toolstack, a Linux 6.1 kernel for dom0 and the domU, a static busybox and
# cpio. Does nothing when everything is there. Needs root (CI runs as root).
#
# Exit status: 0 when everything is installed afterwards, 1 otherwise (the
# test then says why it is skipped).
set -uo pipefail

missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in xen-hypervisor-4.17-amd64 xen-utils-4.17 linux-image-amd64 busybox-static cpio; do
  have_pkg "$p" || missing+=("$p")
done
need_qemu=0
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_qemu=1

if [ ${#missing[@]} = 0 ] && [ $need_qemu = 0 ]; then
  echo "xen test prerequisites: installed"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "xen test prerequisites missing (${missing[*]:-} qemu=$need_qemu) and not root: not installing" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_q() { apt-get -q -o Dpkg::Use-Pty=0 "$@"; }
apt_q update >/dev/null || { echo "apt-get update failed" >&2; exit 1; }

if [ $need_qemu = 1 ]; then
  # Bookworm's own QEMU 7.2 conflicts with the newer qemu-utils some machines
  # ship; bookworm-backports has QEMU 10. The suite is added on the Debian
  # mirror apt already uses.
  mirror=$( { grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
              grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}'
            } | grep -E '/debian/?$' | head -1)
  if [ -n "$mirror" ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} bookworm-backports main" \
      > /etc/apt/sources.list.d/vstats-xen-backports.list
    apt_q update >/dev/null || { echo "apt-get update (backports) failed" >&2; exit 1; }
  fi
  apt_q install -y --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils >/dev/null \
    || apt_q install -y --no-install-recommends qemu-system-x86 >/dev/null \
    || { echo "installing QEMU failed" >&2; exit 1; }
fi
if [ ${#missing[@]} != 0 ]; then
  apt_q install -y --no-install-recommends "${missing[@]}" >/dev/null \
    || { echo "installing ${missing[*]} failed" >&2; exit 1; }
fi
echo "xen test prerequisites: installed (${missing[*]:-}$([ $need_qemu = 1 ] && echo ' qemu'))"
