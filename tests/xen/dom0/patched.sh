#!/bin/sh
# Runs inside dom0 (busybox sh), as root, on a hypervisor with the vstats
# series (tests/patched_xen.rs), while the domU $DOMU_ID spins its vCPU 0
# and leaves its vCPU 1 blocked: the project's tool reads the domain's
# tables and time frame through dom0's real libxenforeignmemory. Markers as
# in checks.sh.
HERE=$(dirname "$0")
TOOL=$HERE/xen-vcpus-stats
PROBE=$HERE/xen-variant-probe
export VSTATS_ROOT=/tmp/vstats-empty-root
mkdir -p "$VSTATS_ROOT"

. "$HERE/run.sh"

# The libraries the tool loads (Debian's, nothing else in this initrd).
run libs sh -c 'ls /usr/lib/x86_64-linux-gnu | grep -e libxenforeignmemory -e libxenctrl'
run xl-vcpu-list-before xl vcpu-list "$DOMU_ID"
# No libxenctrl for the tool: dom0's shared_info route cannot be opened, so
# up-to-date times can only come from the domain's time frame.
run sample env VSTATS_XENCTRL_LIB=/nonexistent/libxenctrl.so \
  "$TOOL" sample --domid "$DOMU_ID" --interval 2 --count 3 --format json
run check "$TOOL" check --domid "$DOMU_ID"
run top "$TOOL" top -b -n 2
run xl-vcpu-list-after xl vcpu-list "$DOMU_ID"
# xl's running time, the table's, xl's again, back to back.
run cmp-xl-1 xl vcpu-list "$DOMU_ID"
run cmp-sample env VSTATS_XENCTRL_LIB=/nonexistent/libxenctrl.so \
  "$TOOL" sample --domid "$DOMU_ID" --interval 0.1 --count 1 --format json
run cmp-xl-2 xl vcpu-list "$DOMU_ID"
# The time frame as a program sees it, and the clock the table uses.
run clock "$PROBE" --clock "$DOMU_ID"
# dom0's own time frame is not mapped into dom0 (EPERM: own domain).
run probe "$PROBE" "$DOMU_ID" 0
# The series' own C programs, built with the hypervisor (xen/build.sh):
# the invariant test's selftest (every broken input caught), the test on the
# live domain (20 samples 100 ms apart), and the reader (3 samples).
run c-selftest "$HERE/test-vcpu-stats" --selftest
run c-test "$HERE/test-vcpu-stats" --samples 20 --interval-ms 100 "$DOMU_ID"
run c-reader "$HERE/xen-vcpus-stats-c" "$DOMU_ID" 500 3
