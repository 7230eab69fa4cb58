#!/usr/bin/env bash
# fault_clear -- an injected persistent write fault on a running caskd: the
# FLUSH that meets it fails (nothing is acknowledged that is not durable),
# the pool suspends, `cask pool status` says why and how to resume, another
# pool keeps being served, `cask pool clear` refuses while the fault lasts
# and resumes the pool once it is gone. Everything flushed before the fault
# is still there after the clear and after a restart; a connection opened
# before the clear may read but its writes and flushes fail (the writes it
# never flushed were lost); cask-debug check is clean. Also the CLI's
# errors for inject and clear.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
start_caskd
$CASK pool create tank "$T/tank0.vdev" --size 128M
$CASK pool create other "$T/other0.vdev" --size 64M
$CASK vol create tank/v --size 16M
$CASK vol create other/w --size 16M
nbdpy() { CASK_TEST_NBD="$NBD" "$PY" - "$@"; }

nbdpy <<'PY'
import nbd, os
h = nbd.NBD(); h.connect_uri(os.environ["CASK_TEST_NBD"] + "/tank/v")
h.pwrite(b"A" * 65536, 0); h.flush()            # durable before the fault
h.pwrite(b"B" * 65536, 1 << 20)                 # acknowledged, never flushed
PY
$CASK pool inject tank write --persistent
nbdpy <<'PY'
import nbd, os, sys
h = nbd.NBD(); h.connect_uri(os.environ["CASK_TEST_NBD"] + "/tank/v")
h.pwrite(b"C" * 65536, 2 << 20)
try:
    h.flush()
    sys.exit("FLUSH succeeded although every write fails")
except nbd.Error as e:
    print("flush failed as it must:", e.string)
try:
    h.pwrite(b"D" * 4096, 3 << 20)
    sys.exit("a write to a suspended pool succeeded")
except nbd.Error as e:
    print("write to the suspended pool failed:", e.string)
assert h.pread(65536, 0) == b"A" * 65536      # reads still work
PY
$CASK pool status tank | tee "$T/status.out"
grep -q "state: SUSPENDED" "$T/status.out" || fail "pool not shown as suspended"
grep -q "could not be committed" "$T/status.out" || fail "status does not say why"
grep -q "cask pool clear tank" "$T/status.out" || fail "status does not say how to resume"
$CASK pool status -j tank | "$PY" -c 'import json,sys; d=json.load(sys.stdin); assert d["state"]=="SUSPENDED", d'
# caskd says so in its log, once (its watcher polls every second)
for _ in $(seq 1 600); do grep -q "pool tank SUSPENDED" "$T/caskd.log" && break; sleep 0.1; done
[ "$(grep -c "pool tank SUSPENDED" "$T/caskd.log")" -eq 1 ] || fail "caskd did not log the suspension exactly once"
# the other pool is served as usual
nbdpy <<'PY'
import nbd, os
h = nbd.NBD(); h.connect_uri(os.environ["CASK_TEST_NBD"] + "/other/w")
h.pwrite(b"O" * 65536, 0, nbd.CMD_FLAG_FUA); h.flush()
assert h.pread(65536, 0) == b"O" * 65536
PY
expect_fail 1 "still" $CASK pool clear tank
$CASK pool inject tank none
$CASK pool clear tank
$CASK pool status tank | grep -q "state: ONLINE" || fail "not online after clear"
nbdpy <<'PY'
import nbd, os, sys
h = nbd.NBD(); h.connect_uri(os.environ["CASK_TEST_NBD"] + "/tank/v")
if h.pread(65536, 0) != b"A" * 65536:
    sys.exit("flushed data lost across the clear")
if h.pread(65536, 1 << 20) not in (b"B" * 65536, bytes(65536)):
    sys.exit("unflushed write came back as something else")
h.pwrite(b"E" * 65536, 4 << 20); h.flush()
PY
stop_caskd
start_caskd
nbdpy <<'PY'
import nbd, os, sys
h = nbd.NBD(); h.connect_uri(os.environ["CASK_TEST_NBD"] + "/tank/v")
assert h.pread(65536, 0) == b"A" * 65536, "A lost after restart"
assert h.pread(65536, 4 << 20) == b"E" * 65536, "E lost after restart"
g = nbd.NBD(); g.connect_uri(os.environ["CASK_TEST_NBD"] + "/other/w")
assert g.pread(65536, 0) == b"O" * 65536, "other pool lost data"
PY
# a once-only flush fault once the intent log is in use (after the first
# FLUSH since import, which commits a txg): the log's flush fails, the FLUSH
# is still answered (by a txg commit), the pool stays online
nbdpy <<'PY'
import nbd, os
h = nbd.NBD(); h.connect_uri(os.environ["CASK_TEST_NBD"] + "/tank/v")
h.pwrite(b"W" * 4096, 7 << 20); h.flush()
PY
$CASK pool inject tank flush
nbdpy <<'PY'
import nbd, os
h = nbd.NBD(); h.connect_uri(os.environ["CASK_TEST_NBD"] + "/tank/v")
h.pwrite(b"F" * 4096, 5 << 20); h.flush()
h.pwrite(b"G" * 4096, 6 << 20); h.flush()
PY
$CASK pool status tank | grep -q "state: ONLINE" || fail "a once-only flush fault suspended the pool"
# a connection that lives through a suspend and clear: it still reads, but
# its writes and flushes fail after the clear (what it never flushed is
# gone); a new connection works
CASK_BIN="$CASK" nbdpy <<'PY'
import nbd, os, subprocess, sys
cask = os.environ["CASK_BIN"]
h = nbd.NBD(); h.connect_uri(os.environ["CASK_TEST_NBD"] + "/tank/v")
h.pwrite(b"H" * 4096, 8 << 20); h.flush()
h.pwrite(b"I" * 4096, 9 << 20)                   # never flushed
subprocess.run([cask, "pool", "inject", "tank", "write", "--persistent"], check=True)
try:
    h.pwrite(b"J" * 4096, 10 << 20); h.flush(); sys.exit("flush succeeded under a write fault")
except nbd.Error:
    pass
subprocess.run([cask, "pool", "inject", "tank", "none"], check=True)
subprocess.run([cask, "pool", "clear", "tank"], check=True)
assert h.pread(4096, 8 << 20) == b"H" * 4096
for what, fn in (("flush", lambda: h.flush()), ("write", lambda: h.pwrite(b"K" * 4096, 11 << 20))):
    try:
        fn(); sys.exit("%s on a connection from before the clear succeeded" % what)
    except nbd.Error as e:
        print("old connection after clear: %s fails: %s" % (what, e.string))
g = nbd.NBD(); g.connect_uri(os.environ["CASK_TEST_NBD"] + "/tank/v")
g.pwrite(b"L" * 4096, 12 << 20); g.flush()
assert g.pread(4096, 8 << 20) == b"H" * 4096
PY
# CLI errors
expect_fail 2 "bad fault" $CASK pool inject tank sideways
expect_fail 2 "needs a pool" $CASK pool inject tank
expect_fail 2 "bad number" $CASK pool inject tank write --after x
expect_fail 1 "does not exist\|no pool\|not found" $CASK pool clear nosuch
expect_fail 1 "no vdev" $CASK pool inject tank read --vdev 5
stop_caskd
"$CASK_BUILD/cask-debug" check "$T/tank0.vdev" > "$T/check.out" || { cat "$T/check.out"; fail "cask-debug check"; }
echo ok
