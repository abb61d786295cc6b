#!/usr/bin/env bash
# Boots Xen with the dom0 initrd that initrd.sh built, inside QEMU with TCG
# (full emulation: these machines' KVM cannot run Xen), and waits until dom0
# powers the machine off or TIMEOUT seconds pass:
#
#   boot.sh WORK LOG TIMEOUT
#
# The serial console (Xen's messages and dom0's hvc0) goes to LOG. The exit
# status is QEMU's (124 on a timeout).
#
# XEN_IMAGE=path boots another hypervisor: the uncompressed multiboot ELF, as
# `xen/xen` after a build. The default is Debian's 4.17, unpacked into WORK.
# What is known not to work here: KVM acceleration, `-cpu EPYC` (Xen faults in
# its mwait idle driver), PVH guests under TCG; and no comma may appear in
# the dom0 command line (QEMU splits the -initrd list on commas).
set -euo pipefail
WORK=${1:?usage: boot.sh WORK LOG TIMEOUT}
LOG=${2:?usage: boot.sh WORK LOG TIMEOUT}
TIMEOUT=${3:-600}
WORK=$(cd "$WORK" && pwd)

image=${XEN_IMAGE:-}
if [ -z "$image" ]; then
  image=$WORK/xen-4.17
  [ -s "$image" ] || zcat /boot/xen-4.17-amd64.gz > "$image"
fi
[ -f "$image" ] || { echo "boot.sh: no hypervisor image $image" >&2; exit 2; }

xen_args="console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=2 loglvl=all guest_loglvl=warning"
dom0_args="console=hvc0 earlyprintk=xen loglevel=4"
: > "$LOG"
set +e
timeout --kill-after=10 "$TIMEOUT" \
  qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -cpu max -smp 2 -m 2048 \
    -display none -vga none -monitor none -no-reboot -nodefaults \
    -serial "file:$LOG" \
    -kernel "$image" -append "$xen_args" \
    -initrd "$WORK/vmlinuz $dom0_args,$WORK/dom0.cpio.gz" \
    > "$WORK/qemu.out" 2>&1
rc=$?
set -e
[ -s "$WORK/qemu.out" ] && tail -5 "$WORK/qemu.out" >&2
exit $rc
