#!/usr/bin/env bash
# rebuild_proportional -- a delta rebuild moves only what the returning
# replica missed (docs/replication.md 13.4). Two real caskd on loopback: A
# controls tank/db (1 GiB, consistency all) with a replica on B. After an
# initial fill (committed), B is killed -9; the clients write 32 MiB and
# trim 8 MiB in X scattered extents of at most 1 MiB; B restarts and
# `cask vol replica rebuild` brings it back. The job's bytes-transferred
# counter (also in vol.status) must be at most W + 256*X + 64 KiB, W the
# bytes written rounded out to whole blocks -- an exact bound, no timing --
# and then `cask vol checksum` of both replicas is equal, B is in sync
# again, later writes reach it, and cask-debug check is clean on both pools.
# Also: a full rebuild (vol replica add) of a new replica on a third caskd
# C transfers the data once (no zeros of the thin volume), and equals;
# remove; replace (B's replica by another new one on C).
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
head -c 48 /dev/urandom | base64 > "$T/peer.key"; chmod 600 "$T/peer.key"
RB=$(free_port); RC=$(free_port)
start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$(free_port)"
start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
B() { CASK_SOCKET="$SOCK_B" "$CASK" "$@"; }
$CASK pool create tank "$T/tank.vdev" --size 2G >/dev/null
B pool create p2 "$T/p2.vdev" --size 2G >/dev/null
$CASK vol create tank/db --size 1G --replica "127.0.0.1:$RB/p2" -o consistency=all -o repl_deadline=2000
export SOCK NBD T

# the initial fill, flushed (so the common point is committed on both)
"$PY" - <<'PY'
import os, random, nbd
h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/db")
rnd = random.Random(1)
for slot in range(0, 1024, 8):            # 128 MiB: 1 MiB at every 8th MiB
    h.pwrite(rnd.randbytes(1 << 20), slot << 20)
h.flush(); h.shutdown()
PY
[ "$($CASK vol checksum tank/db | cut -d' ' -f1)" = "$(B vol checksum p2/db | cut -d' ' -f1)" ] ||
  fail "the replicas differ before the outage"

# B goes away (kill -9); the clients write and trim while it is gone
kill -9 "$CASKD_B_PID"; wait "$CASKD_B_PID" 2>/dev/null || true; CASKD_B_PID=
"$PY" - > "$T/changed" <<'PY'
import os, random, nbd
h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/db")
rnd = random.Random(2)
# distinct MiB slots, so extents never touch: writes where the fill is not, trims where it is
slots = rnd.sample([m for m in range(1024) if m % 8], 64) + rnd.sample(range(0, 1024, 8), 16)
w = x = 0
for i, slot in enumerate(slots):
    off = (slot << 20) + rnd.randrange(0, 128) * 4096
    if i < 64:                             # 64 writes of 512 KiB within their MiB: 32 MiB
        n = 512 << 10
        h.pwrite(rnd.randbytes(n), off); w += n
    else:                                  # 16 trims of 512 KiB (8 MiB), in filled slots
        h.trim(512 << 10, off)
    x += 1
h.flush(); h.shutdown()
print(w, x)
PY
read -r W X < "$T/changed"
[ "$W" -gt 0 ] && [ "$X" -eq 80 ] || fail "workload: W=$W X=$X"
$CASK vol status tank/db | grep -q "127.0.0.1:$RB/p2 *degraded" || fail "B is not degraded: $($CASK vol status tank/db)"

# B returns; the delta rebuild
PORT_B= start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
out=$($CASK vol replica rebuild tank/db "127.0.0.1:$RB/p2" --wait) || fail "rebuild: $out"
echo "$out"
"$PY" - "$W" "$X" <<'PY'
import os, sys
sys.path.insert(0, "tests/integration")
from viohelp import Ctl
W, X = int(sys.argv[1]), int(sys.argv[2])
s = Ctl(os.environ["SOCK"]).call("vol.status", name="tank/db")
b = [r for r in s["replicas"] if r["pool"] == "p2"][0]
rb = b["rebuild"]
bound = W + 256 * X + 65536
print("delta rebuild: transferred %d bytes, listed %d, for %d bytes written in %d extents (bound %d)"
      % (rb["transferred"], rb["total"], W, X, bound))
assert b["state"] == "in-sync" and rb["state"] == "done" and rb["kind"] == "delta", s
assert rb["transferred"] <= bound, (rb, bound)
assert rb["transferred"] >= W, rb          # it did move the data
PY
[ "$($CASK vol checksum tank/db | cut -d' ' -f1)" = "$(B vol checksum p2/db | cut -d' ' -f1)" ] ||
  fail "the replicas differ after the delta rebuild"
$CASK vol status tank/db | tee "$T/status.out"
grep -q "127.0.0.1:$RB/p2 *in-sync .*delta done .* transferred (job 1)" "$T/status.out" || fail "vol status: no rebuild"
$CASK vol status -j tank/db | "$PY" -c 'import json,sys; s=json.load(sys.stdin); r=[x for x in s["replicas"] if x["pool"]=="p2"][0]; assert r["rebuild"]["state"]=="done" and r["rebuild"]["transferred"] > 0, s'
$CASK job list -H -o kind,state,done,total | grep -q "^rebuild	done	" || fail "job list: $($CASK job list)"

# in sync again: a write reaches both (consistency all)
"$PY" -c '
import os, nbd
h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/db")
h.pwrite(b"z" * 65536, 5 << 20); h.flush(); h.shutdown()'
[ "$($CASK vol checksum tank/db | cut -d' ' -f1)" = "$(B vol checksum p2/db | cut -d' ' -f1)" ] ||
  fail "a write after the rebuild did not reach both"

# a full rebuild: a new replica on C (vol replica add); the data once, no zeros of the thin volume
start_caskd_c --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RC"
C() { CASK_SOCKET="$SOCK_C" "$CASK" "$@"; }
C pool create p3 "$T/p3.vdev" --size 2G >/dev/null
out=$($CASK vol replica add tank/db "127.0.0.1:$RC/p3" --wait) || fail "replica add: $out"
echo "$out"
"$PY" - <<'PY'
import os, sys
sys.path.insert(0, "tests/integration")
from viohelp import Ctl
ctl = Ctl(os.environ["SOCK"])
used = ctl.call("vol.get", name="tank/db")["logical"]
s = ctl.call("vol.status", name="tank/db")
c = [r for r in s["replicas"] if r["pool"] == "p3"][0]
rb = c["rebuild"]
print("full rebuild: transferred %d bytes for %d bytes of data in a 1 GiB volume" % (rb["transferred"], used))
assert c["state"] == "in-sync" and rb["kind"] == "full" and len(s["replicas"]) == 3, s
assert used <= rb["transferred"] <= used + used // 64 + 65536, (rb, used)
PY
[ "$($CASK vol checksum tank/db | cut -d' ' -f1)" = "$(C vol checksum p3/db | cut -d' ' -f1)" ] ||
  fail "the added replica differs"
expect_fail 1 "already" "$CASK" vol replica add tank/db "127.0.0.1:$RC/p3"
expect_fail 1 "not a replica" "$CASK" vol replica rebuild tank/db "127.0.0.1:1/nope"
$CASK vol replica remove tank/db "127.0.0.1:$RC/p3"
$CASK vol status -j tank/db | "$PY" -c 'import json,sys; s=json.load(sys.stdin); assert len(s["replicas"]) == 2, s'
# replace: B's replica by a new one on C (added with a full copy, then B's removed)
C pool create p4 "$T/p4.vdev" --size 2G >/dev/null
out=$($CASK vol replica replace tank/db "127.0.0.1:$RB/p2" "127.0.0.1:$RC/p4" --wait) || fail "replace: $out"
$CASK vol status -j tank/db | "$PY" -c 'import json,sys; s=json.load(sys.stdin); p=sorted(r["pool"] for r in s["replicas"]); assert p == ["p4", "tank"] and all(r["state"] == "in-sync" for r in s["replicas"]), s'
[ "$($CASK vol checksum tank/db | cut -d' ' -f1)" = "$(C vol checksum p4/db | cut -d' ' -f1)" ] ||
  fail "the replacing replica differs"

# an unreachable new replica: the job fails, naming it, and the volume's members are as before
dead=$(free_port)
expect_fail 1 "127.0.0.1:$dead" "$CASK" vol replica add tank/db "127.0.0.1:$dead/p9" --wait
$CASK vol status -j tank/db | "$PY" -c 'import json,sys; s=json.load(sys.stdin); assert sorted(r["pool"] for r in s["replicas"]) == ["p4", "tank"], s'

stop_caskd
kill -TERM "$CASKD_B_PID" "$CASKD_C_PID"; wait "$CASKD_B_PID" "$CASKD_C_PID" 2>/dev/null || true
CASKD_B_PID=; CASKD_C_PID=
for v in tank p2 p3 p4; do
  "$CASK_BUILD/cask-debug" check "$T/$v.vdev" > "$T/check.out" 2>&1 || { cat "$T/check.out"; fail "cask-debug check $v"; }
done
echo "ok: delta rebuild proportional to the change; full rebuild moves the data once"
