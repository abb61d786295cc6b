# Sourced by the dom0 scripts (busybox sh): `run NAME CMD...` runs one
# command and reports it on the console for the test on the host to parse:
#
#   VSTATS-XEN-RUN <name> BEGIN
#   VSTATS-XEN-OUT <name> <a line of stdout>
#   VSTATS-XEN-ERR <name> <a line of stderr>
#   VSTATS-XEN-RUN <name> END rc=<exit status>
run() {
  name=$1; shift
  echo "VSTATS-XEN-RUN $name BEGIN"
  "$@" >/tmp/out 2>/tmp/err
  rc=$?
  sed "s/^/VSTATS-XEN-OUT $name /" /tmp/out
  sed "s/^/VSTATS-XEN-ERR $name /" /tmp/err
  echo "VSTATS-XEN-RUN $name END rc=$rc"
}
