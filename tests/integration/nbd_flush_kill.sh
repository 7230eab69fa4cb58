#!/usr/bin/env bash
# nbd_flush_kill -- FLUSH and FUA are honest across a real crash: writes
# made on one connection and flushed from another (CAN_MULTI_CONN), and
# FUA writes, survive caskd being killed with SIGKILL; writes that were
# never flushed come back as their old or their new contents, never as
# anything else. Repeated for several rounds, each ending in a kill.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
start_caskd
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 64M
for round in 1 2 3 4 5; do
  CASK_TEST_URI="$NBD/tank/v" ROUND=$round "$PY" - <<'PY'
import nbd, os
uri, r = os.environ["CASK_TEST_URI"], int(os.environ["ROUND"])
a, b = nbd.NBD(), nbd.NBD()
a.connect_uri(uri); b.connect_uri(uri)
assert a.can_multi_conn() and a.can_fua()
M = 1 << 20
def pat(tag, n=65536):
    return bytes([tag]) * n
a.pwrite(pat(r), r * M)                        # flushed below, by the other connection
b.flush()
a.pwrite(pat(100 + r), 16 * M + r * M, nbd.CMD_FLAG_FUA)   # FUA
a.pwrite(pat(200 + r), 32 * M + r * M)         # never flushed
PY
  kill -KILL "$CASKD_PID"; wait "$CASKD_PID" 2>/dev/null || true; CASKD_PID=
  start_caskd
  CASK_TEST_URI="$NBD/tank/v" ROUND=$round "$PY" - <<'PY'
import nbd, os, sys
uri, r = os.environ["CASK_TEST_URI"], int(os.environ["ROUND"])
h = nbd.NBD(); h.connect_uri(uri)
M = 1 << 20
for k in range(1, r + 1):
    if h.pread(65536, k * M) != bytes([k]) * 65536:
        sys.exit("round %d: flushed write of round %d lost" % (r, k))
    if h.pread(65536, 16 * M + k * M) != bytes([100 + k]) * 65536:
        sys.exit("round %d: FUA write of round %d lost" % (r, k))
    got = h.pread(65536, 32 * M + k * M)
    if got not in (bytes(65536), bytes([200 + k]) * 65536):
        sys.exit("round %d: unflushed write of round %d came back as something else" % (r, k))
PY
done
stop_caskd
"$CASK_BUILD/cask-debug" check "$T/tank0.vdev" > "$T/check.out" || { cat "$T/check.out"; fail "cask-debug check after the kills"; }
echo ok
