#!/usr/bin/env bash
# faultproxy -- the fault proxy (tests/tools/faultproxy.py) between real NBD
# clients (qemu-io, nbdcopy, nbdinfo, python3-libnbd) and a real caskd:
# delay, bandwidth limit, RST mid-copy and mid-write (a recorded history
# checked by histcheck.py afterwards), blackhole in each direction (no
# answer, the client times out; what was acknowledged is intact), stall,
# hold, pause, partition and heal, a flipped bit, cut, close, detach with a
# late write. Scenarios and assertions: faultproxy_nbd.py.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
need qemu-io
need nbdcopy
need nbdinfo
start_caskd
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 16M
"$PY" "$(dirname "$0")/faultproxy_nbd.py" "$PORT" "$T" || {
  echo "--- proxy log (last 30 lines) ---"; tail -n 30 "$T/proxy.log"; fail "faultproxy_nbd"; }
kill -0 "$CASKD_PID" || fail "caskd died"
stop_caskd
echo ok
