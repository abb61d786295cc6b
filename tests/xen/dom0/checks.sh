#!/bin/sh
# Runs inside dom0 (busybox sh), as root, while the domU $DOMU_ID spins its
# vCPU: the project's commands against the real Xen and its real libraries.
# Each run is reported on the console by `run` (run.sh), for the test on
# the host to parse.
HERE=$(dirname "$0")
TOOL=$HERE/xen-vcpus-stats
PROBE=$HERE/xen-variant-probe
export VSTATS_ROOT=/tmp/vstats-empty-root
mkdir -p "$VSTATS_ROOT"

. "$HERE/run.sh"

run xl-info xl info
run xl-list xl list
run list "$TOOL" list
run list-json "$TOOL" list --format json
run sample "$TOOL" sample --domid "$DOMU_ID" --count 1
run check "$TOOL" check --domid "$DOMU_ID"
run schema "$TOOL" schema --domid "$DOMU_ID"
run sample-dom0 "$TOOL" sample --domid 0 --count 1
run sample-nodomain "$TOOL" sample --domid 31000 --count 1
run missing-lib env VSTATS_XENFOREIGNMEMORY_LIB=/nonexistent/libxenforeignmemory.so.1 \
  "$TOOL" sample --domid "$DOMU_ID" --count 1
# A file that exists but is not a shared library.
run unloadable-lib env VSTATS_XENFOREIGNMEMORY_LIB="$HERE/checks.sh" \
  "$TOOL" sample --domid "$DOMU_ID" --count 1
# A real library without the foreign-memory symbols.
run wrong-lib env VSTATS_XENFOREIGNMEMORY_LIB=libxenstore.so.4 \
  "$TOOL" sample --domid "$DOMU_ID" --count 1
# The backend's errors as a program sees them: the enum variant.
run probe "$PROBE" "$DOMU_ID" 0 31000
