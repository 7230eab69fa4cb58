#!/usr/bin/env bash
# rebuild_kill_controller -- kill -9 of the controller in the middle of a
# rebuild (docs/replication.md 12.7 "Controller killed"): A controls
# tank/db (3-way once C is added, consistency quorum) with B in sync; `vol
# replica add` copies 64 MiB to C (throttled); once C's durable cursor
# passed 24 MiB, A is killed -9 and restarted. The restarted controller
# reconciles from A and B (C, whose record says rebuilding, is not counted
# in sync: it shows degraded) and serves; `vol replica rebuild` resumes C
# from its durable cursor -- less than the whole copy is transferred -- and
# then all three replicas are equal and in sync.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
head -c 48 /dev/urandom | base64 > "$T/peer.key"; chmod 600 "$T/peer.key"
RA=$(free_port); RB=$(free_port); RC=$(free_port)
start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RA"
start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
start_caskd_c --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RC"
B() { CASK_SOCKET="$SOCK_B" "$CASK" "$@"; }
C() { CASK_SOCKET="$SOCK_C" "$CASK" "$@"; }
$CASK pool create tank "$T/tank.vdev" --size 1G >/dev/null
B pool create p2 "$T/p2.vdev" --size 1G >/dev/null
C pool create p3 "$T/p3.vdev" --size 1G >/dev/null
$CASK vol create tank/db --size 256M --replica "127.0.0.1:$RB/p2" -o consistency=quorum -o rebuild_rate=16
export NBD SOCK RC
"$PY" - <<'PY'
import os, random, nbd
h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/db")
rnd = random.Random(11)
for mib in range(64):
    h.pwrite(rnd.randbytes(1 << 20), mib << 20)
h.flush(); h.shutdown()
PY
"$PY" - <<'PY'
import os, sys, time
sys.path.insert(0, "tests/integration")
from viohelp import Ctl
ctl = Ctl(os.environ["SOCK"])
job = ctl.call("vol.replica_add", name="tank/db", replica="127.0.0.1:%s/p3" % os.environ["RC"])["job"]
while True:
    j = ctl.call("job.get", id=job)
    assert j["state"] == "running", j
    st = ctl.call("vol.status", name="tank/db")
    rb = [r for r in st["replicas"] if r["pool"] == "p3"][0].get("rebuild", {})
    if rb.get("durable_cursor", 0) >= 24 << 20:
        break
    time.sleep(0.05)
print("killing the controller with C's durable cursor at %d of %d" % (rb["durable_cursor"], j["total"]))
PY
kill -9 "$CASKD_PID"; wait "$CASKD_PID" 2>/dev/null || true; CASKD_PID=
PORT= start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RA"
for _ in $(seq 1 600); do $CASK vol status tank/db 2>/dev/null | grep -q "state serving" && break; sleep 0.1; done
$CASK vol status tank/db | tee "$T/status.out"
grep -q "state serving" "$T/status.out" || fail "the restarted controller does not serve"
grep -q "127.0.0.1:$RC/p3 *degraded" "$T/status.out" || fail "C is not degraded after the restart"
out=$($CASK vol replica rebuild tank/db "127.0.0.1:$RC/p3" --wait) || fail "resume after the restart: $out"
echo "$out"
"$PY" - <<'PY'
import os, sys
sys.path.insert(0, "tests/integration")
from viohelp import Ctl
s = Ctl(os.environ["SOCK"]).call("vol.status", name="tank/db")
c = [r for r in s["replicas"] if r["pool"] == "p3"][0]
rb = c["rebuild"]
print("resumed by the restarted controller: transferred %d bytes of a 64 MiB copy" % rb["transferred"])
assert all(r["state"] == "in-sync" for r in s["replicas"]) and len(s["replicas"]) == 3, s
assert rb["kind"] == "full" and rb["transferred"] < 48 << 20, rb
PY
a=$($CASK vol checksum tank/db | cut -d' ' -f1)
[ "$a" = "$(B vol checksum p2/db | cut -d' ' -f1)" ] && [ "$a" = "$(C vol checksum p3/db | cut -d' ' -f1)" ] ||
  fail "the replicas differ after the resumed rebuild"
stop_caskd
kill -TERM "$CASKD_B_PID" "$CASKD_C_PID"; wait "$CASKD_B_PID" "$CASKD_C_PID" 2>/dev/null || true
CASKD_B_PID=; CASKD_C_PID=
for v in tank p2 p3; do
  "$CASK_BUILD/cask-debug" check "$T/$v.vdev" > "$T/check.out" 2>&1 || { cat "$T/check.out"; fail "cask-debug check $v"; }
done
echo "ok: a rebuild interrupted by kill -9 of the controller resumes from the target's cursor after the restart"
