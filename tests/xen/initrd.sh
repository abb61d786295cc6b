#!/usr/bin/env bash
# Builds the dom0 initrd for the real-Xen test (Debian bookworm packages: see
# install.sh):
#
#   initrd.sh WORK PAYLOAD
#
# WORK/dom0.cpio.gz   busybox, Xen's toolstack (xl, xenstored, xenconsoled,
#                     xen-init-dom0, every libxen*.so), the Xen kernel modules,
#                     a PV domU (kernel + a busybox initrd that spins its vCPU
#                     0 until it is destroyed; its other vCPUs, DOMU_VCPUS in
#                     all (default 1), have nothing to run and block; up to
#                     DOMU_MAXVCPUS (default DOMU_VCPUS) more exist and stay
#                     offline), PAYLOAD
#                     copied to /opt/vstats with
#                     the shared libraries its executables need, and an /init
#                     that starts the toolstack, creates the domU, runs
#                     /opt/vstats/checks.sh and powers off.
# WORK/vmlinuz        the kernel (dom0 and domU run the same one).
#
# Every line /init prints that the test reads starts with "VSTATS-XEN:".
set -euo pipefail
DOMU_VCPUS=${DOMU_VCPUS:-1}
case $DOMU_VCPUS in [1-9]) ;; *) echo "initrd.sh: DOMU_VCPUS must be 1 to 9, not $DOMU_VCPUS" >&2; exit 2 ;; esac
# The domU's maximum vCPU count (xl's maxvcpus): vCPUs DOMU_VCPUS and up
# exist in Xen but stay down (offline). The guest's maxcpus=DOMU_VCPUS keeps
# Linux from bringing each of them up at boot and down again (with 70 of
# them that made the boot too slow to finish under load).
DOMU_MAXVCPUS=${DOMU_MAXVCPUS:-$DOMU_VCPUS}
case $DOMU_MAXVCPUS in
  ''|*[!0-9]*) echo "initrd.sh: DOMU_MAXVCPUS must be a number, not $DOMU_MAXVCPUS" >&2; exit 2 ;;
esac
if [ "$DOMU_MAXVCPUS" -lt "$DOMU_VCPUS" ] || [ "$DOMU_MAXVCPUS" -gt 128 ]; then
  echo "initrd.sh: DOMU_MAXVCPUS must be $DOMU_VCPUS to 128, not $DOMU_MAXVCPUS" >&2; exit 2
fi
# The domU's memory: Linux sizes its per-CPU areas for every possible vCPU,
# and with 70 of them 128 MiB runs out while it boots (seen: an
# out-of-memory panic in kthreadd), so 2 MiB more per vCPU past 9.
DOMU_MEMORY=$((128 + (DOMU_MAXVCPUS > 9 ? (DOMU_MAXVCPUS - 9) * 2 : 0)))
WORK=${1:?usage: initrd.sh WORK PAYLOAD}
PAYLOAD=${2:?usage: initrd.sh WORK PAYLOAD}
KVER=${KVER:-$(ls /boot/vmlinuz-* | sed 's|^/boot/vmlinuz-||' | sort -V | tail -1)}
XENBIN=/usr/lib/xen-4.17/bin
LIBDIR=/usr/lib/x86_64-linux-gnu
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
cp /boot/vmlinuz-"$KVER" "$WORK/vmlinuz"

# ---- the domU: print that it runs, then keep its vCPU 0 busy ----
U=$WORK/domU-root
rm -rf "$U"
mkdir -p "$U"/{bin,proc,sys,dev}
cp /bin/busybox "$U/bin/busybox"
for a in sh mount echo cat uname grep taskset sleep; do ln -s busybox "$U/bin/$a"; done
cat > "$U/init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
# A background job's stdin is /dev/null: without it the job does not start.
mount -t devtmpfs dev /dev
echo "VSTATS-XEN-DOMU: running, kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) vCPUs"
# A loop pinned to vCPU 0; init sleeps, so every other vCPU has nothing to
# run and blocks in Xen.
taskset 1 sh -c 'while :; do :; done' &
while :; do sleep 3600; done
EOF
chmod +x "$U/init"

# ---- dom0 ----
R=$WORK/dom0-root
rm -rf "$R"
mkdir -p "$R"/usr/{bin,sbin,lib64} "$R$LIBDIR" "$R"/{proc,sys,dev,run,tmp,root,guest,etc/xen,opt/vstats} \
  "$R"/var/{lib/xen,lib/xenstored,log/xen/console} "$R/lib/modules"
ln -s usr/bin "$R/bin"; ln -s usr/sbin "$R/sbin"; ln -s usr/lib "$R/lib"; ln -s usr/lib64 "$R/lib64"
ln -s ../run "$R/var/run"
cp /bin/busybox "$R/usr/bin/busybox"
for a in $("$R/usr/bin/busybox" --list); do
  [ -e "$R/usr/bin/$a" ] || ln -s busybox "$R/usr/bin/$a"
done

# Copies file $1 to the same path under $R, and every shared library ldd
# names for it (merged /usr: libraries go to $LIBDIR, the loader to lib64).
put() {
  local f=$1 dst=${2:-$1} lib real to
  mkdir -p "$R$(dirname "$dst")"
  cp -L "$f" "$R$dst"
  for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*'); do
    [ -e "$lib" ] || continue
    case $lib in
      /lib64/*|/usr/lib64/*) to=/usr/lib64/$(basename "$lib") ;;
      *) to=$LIBDIR/$(basename "$lib") ;;
    esac
    [ -e "$R$to" ] || cp -L "$lib" "$R$to"
  done
}
for b in xl xenstored xenconsoled xen-init-dom0; do put "$XENBIN/$b"; done
for b in /usr/bin/xenstore-ls /usr/bin/xenstore-read; do [ -e "$b" ] && put "$b"; done
ln -s "$XENBIN/xl" "$R/usr/sbin/xl"
# The libraries the tool loads at run time (dlopen), and their own needs.
for l in "$LIBDIR"/libxen*.so.*; do
  case $l in *.so.[0-9]|*.so.[0-9][0-9]) put "$l" ;; esac
done
cp /etc/xen/xl.conf "$R/etc/xen/" 2>/dev/null || true

# The kernel modules the toolstack needs, in load order.
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs/xenfs; do
  src=/lib/modules/$KVER/kernel/drivers/xen/$m.ko
  if [ -e "$src" ]; then cp "$src" "$R/lib/modules/"
  elif [ -e "$src.xz" ]; then xz -dc "$src.xz" > "$R/lib/modules/$(basename "$m").ko"
  else echo "initrd.sh: no module $m for $KVER" >&2; exit 1; fi
done

# The domU, created from dom0.
cp "$WORK/vmlinuz" "$R/guest/vmlinuz"
(cd "$U" && find . | cpio -o -H newc --quiet | gzip -1) > "$R/guest/initrd.gz"
cat > "$R/guest/busy.cfg" <<EOF
name = "vstats-busy"
type = "pv"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/initrd.gz"
extra = "console=hvc0 quiet loglevel=1 maxcpus=$DOMU_VCPUS"
memory = $DOMU_MEMORY
vcpus = $DOMU_VCPUS
maxvcpus = $DOMU_MAXVCPUS
on_poweroff = "destroy"
on_crash = "preserve"
EOF

# The project's payload and the libraries its executables need.
cp -a "$PAYLOAD"/. "$R/opt/vstats/"
for f in $(find "$R/opt/vstats" -type f -perm -u+x); do
  for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*'); do
    [ -e "$lib" ] || continue
    case $lib in
      /lib64/*|/usr/lib64/*) to=/usr/lib64/$(basename "$lib") ;;
      *) to=$LIBDIR/$(basename "$lib") ;;
    esac
    [ -e "$R$to" ] || cp -L "$lib" "$R$to"
  done
done

cat > "$R/init" <<'EOF'
#!/bin/sh
export PATH=/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin
say() { echo "VSTATS-XEN: $*"; }
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs run /run && mkdir -p /run/xen /run/xenstored
# Kernel messages would interleave with the markers on the same console.
echo 1 > /proc/sys/kernel/printk
say "dom0 up, kernel $(uname -r)"
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs; do
  insmod /lib/modules/$m.ko || say "insmod $m failed"
done
mount -t xenfs xenfs /proc/xen
say "capabilities $(cat /proc/xen/capabilities)"
say "hypervisor $(cat /sys/hypervisor/version/major).$(cat /sys/hypervisor/version/minor)$(cat /sys/hypervisor/version/extra)"
xenstored --pid-file /run/xenstored.pid || say "xenstored failed"
n=0; while [ ! -S /run/xenstored/socket ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done
xen-init-dom0 >/dev/null 2>&1 || say "xen-init-dom0 failed"
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console || say "xenconsoled failed"
xl create /guest/busy.cfg >/tmp/xl-create.log 2>&1; rc=$?
say "xl create rc=$rc"
[ $rc = 0 ] || cat /tmp/xl-create.log
domu=$(xl domid vstats-busy 2>/dev/null)
say "domU id ${domu:-none}"
# Wait (bounded) until the domU's vCPU has run: its console says so.
n=0; while [ $n -lt 600 ] && ! grep -qs 'VSTATS-XEN-DOMU: running' /var/log/xen/console/guest-vstats-busy.log; do
  sleep 0.5; n=$((n+1))
done
if grep -qs 'VSTATS-XEN-DOMU: running' /var/log/xen/console/guest-vstats-busy.log; then
  say "domU running"
else
  # Why not: the guest's own console, for the test's failure message.
  tail -n 20 /var/log/xen/console/guest-vstats-busy.log 2>/dev/null | sed 's/^/VSTATS-XEN: domU console tail: /'
  xl list 2>&1 | sed 's/^/VSTATS-XEN: xl list: /'
fi
say "domU console: $(grep -m1 -o 'running, kernel.*' /var/log/xen/console/guest-vstats-busy.log)"
if [ -x /opt/vstats/checks.sh ]; then
  DOMU_ID=$domu /opt/vstats/checks.sh
  say "checks.sh rc=$?"
fi
xl destroy vstats-busy >/dev/null 2>&1
say "done"
sync
poweroff -f
EOF
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/dom0.cpio.gz"
