#!/usr/bin/env bash
# Builds Xen 4.17 (upstream 01140da4e8, the tree of Debian's source package
# xen 4.17.5+72-g01140da4e8-1) with the vstats series xen/patches/*.patch:
# the hypervisor (xen/xen, the uncompressed multiboot ELF that the boot
# recipe's XEN_IMAGE= takes) and, unless --hypervisor-only, the tools the
# series adds (tools/misc/xen-vcpus-stats, tools/tests/vcpu-stats) with the
# libraries they link against.
#
#   xen/build.sh [--source git|debian] [--hypervisor-only] [--out DIR]
#                [--work DIR]
#
#   --source git     clone $XEN_GIT (default https://github.com/xen-project/xen),
#                    check out 01140da4e8, `git am` the series (default)
#   --source debian  `apt-get source xen=4.17.5+72-g01140da4e8-1` (adds a
#                    deb-src line for the Debian mirror apt already uses),
#                    unpack the orig tarball, apply the series with patch -p1.
#                    XEN_DEBIAN_SRC_DIR=DIR takes the .dsc and tarballs from
#                    DIR instead of downloading them (said so on stderr).
#   --hypervisor-only  build xen/xen only
#   --out DIR        copy xen/xen (and the tools, when built) to DIR
#   --work DIR       build under DIR/xen-build (removed first); default a new
#                    temporary directory, which is kept and printed
#
# Installs its build dependencies with apt-get (needs root when some are
# missing). Uses Debian's toolchain: PATH is reset to the system
# directories, so a python3 or gcc from elsewhere (pyenv, ...) is not used.
# Nothing is cached between runs: every run starts from a fresh source
# tree. Any failure stops the script with a message and a non-zero status.
#
# The last line printed on success is XEN_IMAGE=<path of the built xen/xen>.
set -euo pipefail

XEN_BASE_COMMIT=01140da4e8babe1e79d845b9117c1f9e6a057d0a
XEN_DEB_VERSION=4.17.5+72-g01140da4e8-1
XEN_DEB_UPSTREAM=4.17.5+72-g01140da4e8

die() { echo "xen/build.sh: error: $*" >&2; exit 1; }
say() { echo "xen/build.sh: $*" >&2; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

source_kind=git
hypervisor_only=0
out_dir=
work_dir=
while [ $# -gt 0 ]; do
  case "$1" in
    --source) [ $# -ge 2 ] || die "--source needs git or debian"; source_kind=$2; shift 2 ;;
    --source=*) source_kind=${1#--source=}; shift ;;
    --hypervisor-only) hypervisor_only=1; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out_dir=$2; shift 2 ;;
    --out=*) out_dir=${1#--out=}; shift ;;
    --work) [ $# -ge 2 ] || die "--work needs a directory"; work_dir=$2; shift 2 ;;
    --work=*) work_dir=${1#--work=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case "$source_kind" in
  git|debian) ;;
  *) die "--source must be git or debian, not '$source_kind'" ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
patch_dir=$here/patches
shopt -s nullglob
patches=("$patch_dir"/[0-9][0-9][0-9][0-9]-*.patch)
shopt -u nullglob
[ ${#patches[@]} -gt 0 ] || die "no patches in $patch_dir"

# Debian's toolchain only.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
unset PYTHON PYTHONPATH PYTHONHOME CC CFLAGS LDFLAGS CPPFLAGS MAKEFLAGS || true
export DEBIAN_FRONTEND=noninteractive

# ---- build dependencies -------------------------------------------------
need=(build-essential flex bison python3 patch xz-utils ca-certificates)
[ "$source_kind" = git ] && need+=(git)
[ "$source_kind" = debian ] && need+=(dpkg-dev)
# tools/configure with every optional part disabled still wants these.
[ $hypervisor_only = 0 ] && need+=(python3-dev acpica-tools uuid-dev libyajl-dev zlib1g-dev pkg-config)

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in "${need[@]}"; do have_pkg "$p" || missing+=("$p"); done

apt_q() { apt-get -q -o Dpkg::Use-Pty=0 "$@"; }
apt_updated=0
apt_update() {
  [ $apt_updated = 1 ] && return 0
  apt_q update >/dev/null || die "apt-get update failed"
  apt_updated=1
}
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing build dependencies (${missing[*]}) and not root: cannot install them"
  say "installing ${missing[*]}"
  apt_update
  apt_q install -y --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi

# ---- the work directory -------------------------------------------------
if [ -n "$work_dir" ]; then
  mkdir -p "$work_dir" || die "cannot create $work_dir"
  work=$(cd "$work_dir" && pwd)/xen-build
  rm -rf "$work"
  mkdir "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/vstats-xen-build.XXXXXX")
fi
say "work directory: $work"

# ---- the source tree ----------------------------------------------------
if [ "$source_kind" = git ]; then
  XEN_GIT=${XEN_GIT:-https://github.com/xen-project/xen}
  say "cloning $XEN_GIT"
  git clone -q --no-checkout "$XEN_GIT" "$work/xen" || die "git clone $XEN_GIT failed"
  src=$work/xen
  git -C "$src" -c advice.detachedHead=false checkout -q "$XEN_BASE_COMMIT" \
    || die "commit $XEN_BASE_COMMIT not found in $XEN_GIT"
  say "applying ${#patches[@]} patches with git am"
  git -C "$src" -c user.name="vstats build" -c user.email=build@vstats.invalid \
    am -q --whitespace=nowarn "${patches[@]}" \
    || { git -C "$src" am --abort >/dev/null 2>&1 || true; die "git am of the series failed"; }
  git -C "$src" log --oneline "$XEN_BASE_COMMIT..HEAD" >&2
else
  mkdir "$work/debian-src"
  if [ -n "${XEN_DEBIAN_SRC_DIR:-}" ]; then
    say "taking the source package from XEN_DEBIAN_SRC_DIR=$XEN_DEBIAN_SRC_DIR (not downloading)"
    cp "$XEN_DEBIAN_SRC_DIR/xen_${XEN_DEB_VERSION#*:}.dsc" \
       "$XEN_DEBIAN_SRC_DIR/xen_${XEN_DEB_UPSTREAM}.orig.tar.xz" "$work/debian-src/" \
      || die "xen_${XEN_DEB_VERSION}.dsc or its orig tarball not in $XEN_DEBIAN_SRC_DIR"
  else
    # A deb-src line for the Debian mirror apt already uses.
    if ! grep -rqsE '^(deb-src|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      [ "$(id -u)" = 0 ] || die "no deb-src line in the apt sources and not root: cannot add one"
      mirror=$( { grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
                  grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                    | sed -e 's/\[[^]]*\]//' | awk '{print $2}'
                } | grep -E '/debian/?$' | head -1 || true)
      [ -n "$mirror" ] || die "cannot find the Debian mirror apt uses"
      echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} bookworm main" \
        > /etc/apt/sources.list.d/vstats-xen-src.list
      say "added deb-src ${mirror%/} bookworm main"
      apt_updated=0
    fi
    apt_update
    say "apt-get source xen=$XEN_DEB_VERSION"
    (cd "$work/debian-src" && apt_q source --download-only "xen=$XEN_DEB_VERSION" >/dev/null) \
      || die "apt-get source xen=$XEN_DEB_VERSION failed"
  fi
  orig=$work/debian-src/xen_${XEN_DEB_UPSTREAM}.orig.tar.xz
  [ -f "$orig" ] || die "orig tarball $orig missing"
  # The .dsc lists the orig tarball's checksum: check it (apt-get source
  # does too; XEN_DEBIAN_SRC_DIR's copy is checked only here).
  want=$(awk '/^Checksums-Sha256:/{f=1;next} /^[^ ]/{f=0} f && $3 ~ /orig\.tar\.xz$/ {print $1}' \
           "$work/debian-src/xen_${XEN_DEB_VERSION}.dsc")
  got=$(sha256sum "$orig" | awk '{print $1}')
  [ -n "$want" ] && [ "$want" = "$got" ] || die "orig tarball checksum $got does not match the .dsc ($want)"
  tar -xJf "$orig" -C "$work" || die "unpacking $orig failed"
  src=$work/xen-${XEN_DEB_UPSTREAM}
  [ -d "$src" ] || die "$orig did not unpack to $src"
  say "applying ${#patches[@]} patches with patch -p1"
  for p in "${patches[@]}"; do
    patch -d "$src" -p1 --batch --forward --quiet < "$p" || die "patch $(basename "$p") did not apply"
  done
fi

# ---- the hypervisor -----------------------------------------------------
jobs=$(nproc)
say "building the hypervisor (make -C xen defconfig && make -j$jobs -C xen)"
make -C "$src/xen" PYTHON=/usr/bin/python3 defconfig >/dev/null || die "make defconfig failed"
make -C "$src/xen" -j"$jobs" PYTHON=/usr/bin/python3 || die "building the hypervisor failed"
xen_image=$src/xen/xen
[ -f "$xen_image" ] || die "no $xen_image after the build"
head -c 4 "$xen_image" | grep -q 'ELF' || die "$xen_image is not an ELF image"

# ---- the tools ----------------------------------------------------------
tools=()
if [ $hypervisor_only = 0 ]; then
  say "configuring the tools (every optional part disabled)"
  (cd "$src" && PYTHON=/usr/bin/python3 ./configure --disable-xen --disable-docs --disable-stubdom \
      --disable-monitors --disable-ocamltools --disable-xsmpolicy --disable-seabios \
      --disable-golang --disable-pvshim --disable-ipxe --disable-rombios \
      --disable-qemu-traditional --with-system-qemu=/usr/bin/qemu-system-i386 \
      --with-xenstored=xenstored >"$work/configure.log" 2>&1) \
    || { tail -20 "$work/configure.log" >&2; die "tools/configure failed (log: $work/configure.log)"; }
  make -C "$src/tools/include" PYTHON=/usr/bin/python3 || die "make -C tools/include failed"
  # The libraries xen-vcpus-stats and vcpu-stats link against, in order.
  for l in toolcore toollog call evtchn gnttab foreignmemory devicemodel ctrl; do
    make -C "$src/tools/libs/$l" -j"$jobs" PYTHON=/usr/bin/python3 || die "building tools/libs/$l failed"
  done
  make -C "$src/tools/misc" PYTHON=/usr/bin/python3 xen-vcpus-stats || die "building xen-vcpus-stats failed"
  make -C "$src/tools/tests/vcpu-stats" PYTHON=/usr/bin/python3 || die "building tools/tests/vcpu-stats failed"
  tools=("$src/tools/misc/xen-vcpus-stats" "$src/tools/tests/vcpu-stats/test-vcpu-stats")
  for t in "${tools[@]}"; do [ -x "$t" ] || die "no $t after the build"; done
fi

# ---- results ------------------------------------------------------------
if [ -n "$out_dir" ]; then
  mkdir -p "$out_dir" || die "cannot create $out_dir"
  cp "$xen_image" "$out_dir/xen" || die "cannot copy xen/xen to $out_dir"
  for t in "${tools[@]}"; do cp "$t" "$out_dir/" || die "cannot copy $t to $out_dir"; done
  say "copied xen/xen${tools:+ and the tools} to $out_dir"
fi
for t in "${tools[@]}"; do echo "TOOL=$t"; done
echo "XEN_IMAGE=$xen_image"
