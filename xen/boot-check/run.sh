#!/bin/sh
# Manual evidence script, not a CI test: runs in dom0 as /opt/extra/run.sh under
# /work/shared/xen-boot/recipe.sh (XEN_IMAGE=<built xen/xen> SKIP_INSTALL=1 XENBOOT_EXTRA=<dir>
# XENBOOT_DOMU_SECONDS=60 XENBOOT_DOMU_VCPUS=2), with test-vcpu-stats and xen-vcpus-stats
# (xen/build.sh --out) and optionally the Rust tool as rust/xen-vcpus-stats in <dir>.
# The sleep before "xl destroy" only places the destroy inside the test's sampling window;
# the test checks retirement whenever it happens (--expect-retire: within 150 samples).
cd /opt/extra
id=$(xl domid tiny-pv)
echo "STATS: domU domid=$id"
echo "===== STATS: four concurrent first acquires (racing allocation) ====="
for k in 1 2 3 4; do ./xen-vcpus-stats $id 0 1 > /tmp/race$k.log 2>&1 & done
wait
for k in 1 2 3 4; do head -1 /tmp/race$k.log; done
echo "STATS: distinct generations: $(grep -h -o 'generation [0-9]*' /tmp/race*.log | sort -u | wc -l)"
echo "===== STATS: selftest ====="
./test-vcpu-stats --selftest | tail -1; echo "STATS: selftest rc=$?"
echo "===== STATS: xen-vcpus-stats domU ====="
./xen-vcpus-stats $id 1000 3; echo "STATS: reader rc=$?"
echo "===== STATS: invariant test domU ====="
./test-vcpu-stats --samples 20 --interval-ms 250 --dump /tmp/vcpu.img $id; echo "STATS: test rc=$?"
echo "===== STATS: image mode on the dump ====="
./test-vcpu-stats --image /tmp/vcpu.img --max-vcpus 2; echo "STATS: image rc=$?"
echo "===== STATS: image mode on a corrupted dump (_pad of record 1 zeroed) ====="
cp /tmp/vcpu.img /tmp/bad.img
printf '\000' | dd of=/tmp/bad.img bs=1 seek=196 conv=notrunc 2>/dev/null
./test-vcpu-stats --image /tmp/bad.img --max-vcpus 2; echo "STATS: bad image rc=$?"
if [ -x ./rust/xen-vcpus-stats ]; then
  echo "===== STATS: the project's Rust consumer: sample ====="
  ./rust/xen-vcpus-stats sample --domid $id --count 2 2>&1 | head -30; echo "STATS: rust sample rc=$?"
  echo "===== STATS: the project's Rust invariant checker ====="
  ./rust/xen-vcpus-stats check --domid $id --duration 5 --interval 0.05 --vcpus 2 2>&1; echo "STATS: rust check rc=$?"
fi
echo "===== STATS: dom0 itself (acquiring its own resource is refused by Xen) ====="
./xen-vcpus-stats 0 1000 1; echo "STATS: dom0 reader rc=$?"
echo "===== STATS: retirement: destroy the domU while the test has it mapped ====="
./test-vcpu-stats --samples 150 --interval-ms 200 --expect-retire $id > /tmp/bg.log 2>&1 &
bg=$!
sleep 3
xl destroy $id; echo "STATS: xl destroy rc=$?"
wait $bg; echo "STATS: retirement test rc=$?"
cat /tmp/bg.log
xl list
./xen-vcpus-stats $id 1000 1; echo "STATS: reader after destroy rc=$?"
