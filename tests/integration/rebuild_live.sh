#!/usr/bin/env bash
# rebuild_live -- live writes during a rebuild and a kill -9 of the target
# in the middle of one (docs/replication.md 12.4, 12.7; real caskd on
# loopback, A controls tank/db at consistency all):
#   - live overwrite: while `vol replica add` copies 96 MiB to B (throttled
#     with -o rebuild_rate so that the copy takes seconds), clients rewrite
#     4 KiB blocks all over the range being copied, each with a unique tag,
#     and keep a model of the newest tag per block; afterwards every block
#     read from B's replica (B's NBD export, read-only) and from A is the
#     model's -- no lost or reverted write -- the job reports bytes kept
#     newer (the rule was exercised), and the checksums are equal;
#   - kill -9 of the target mid-rebuild: C is added the same way and killed
#     once its durable cursor (RB_PROGRESS) passed half; the job fails, C restarts `rebuilding`
#     with its durable cursor, `vol replica rebuild` resumes it and
#     transfers less than the first copy's total, and C equals A.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
head -c 48 /dev/urandom | base64 > "$T/peer.key"; chmod 600 "$T/peer.key"
RB=$(free_port); RC=$(free_port)
start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$(free_port)"
start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
B() { CASK_SOCKET="$SOCK_B" "$CASK" "$@"; }
start_c() { start_caskd_c --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RC"; }
C() { CASK_SOCKET="$SOCK_C" "$CASK" "$@"; }
start_c
$CASK pool create tank "$T/tank.vdev" --size 1G >/dev/null
B pool create p2 "$T/p2.vdev" --size 1G >/dev/null
C pool create p3 "$T/p3.vdev" --size 1G >/dev/null
C pool create p3x "$T/p3x.vdev" --size 512M >/dev/null
# a volume whose only replica left is the local one (a replicated volume starts with two), rebuilds at 24 MB/s
$CASK vol create tank/db --size 256M --replica "127.0.0.1:$RC/p3x" -o consistency=all -o rebuild_rate=24
$CASK vol replica remove tank/db "127.0.0.1:$RC/p3x"
export SOCK NBD NBD_B RB RC T
"$PY" - <<'PY'
import os, random, nbd
h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/db")
rnd = random.Random(3)
for mib in range(96):
    h.pwrite(rnd.randbytes(1 << 20), mib << 20)
h.flush(); h.shutdown()
PY

# live overwrite during a full rebuild to B
"$PY" - <<'PY'
import os, sys, struct, time, threading, nbd
sys.path.insert(0, "tests/integration")
from viohelp import Ctl
ctl = Ctl(os.environ["SOCK"])
model, stop, errors = {}, threading.Event(), []
# two writers on disjoint block sets (even / odd blocks) so the model is exact
def writer_set(k):
    try:
        h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/db")
        import random
        rnd, n = random.Random(77 + k), 0
        while not stop.is_set():
            blk = rnd.randrange(0, 96 * 128) * 2 + k
            n += 1
            tag = struct.pack("<IIQ", k, n, blk) * 256
            h.pwrite(tag, blk * 4096)
            model[blk] = tag
            if n % 64 == 0:
                h.flush()
        h.flush(); h.shutdown()
    except Exception as e:
        errors.append(e)
ws = [threading.Thread(target=writer_set, args=(k,)) for k in (0, 1)]
for w in ws: w.start()
time.sleep(0.5)
job = ctl.call("vol.replica_add", name="tank/db", replica="127.0.0.1:%s/p2" % os.environ["RB"])["job"]
while True:
    j = ctl.call("job.get", id=job)
    if j["state"] != "running":
        break
    time.sleep(0.2)
time.sleep(0.3)                            # live writes after the join too
stop.set()
for w in ws: w.join()
assert not errors, errors
assert j["state"] == "done", j
print("live overwrite: %d blocks rewritten during the copy; %s" % (len(model), j["result"]))
kept = int(j["result"].split(" kept newer")[0].split()[-1])
assert kept > 0, j                         # the no-overwrite rule was exercised
for uri in (os.environ["NBD"] + "/tank/db", os.environ["NBD_B"] + "/p2/db"):
    h = nbd.NBD(); h.connect_uri(uri)
    bad = [b for b, v in model.items() if h.pread(4096, b * 4096) != v]
    assert not bad, "%s: %d blocks lost or reverted (first %d)" % (uri, len(bad), bad[0])
    h.shutdown()
PY
[ "$($CASK vol checksum tank/db | cut -d' ' -f1)" = "$(B vol checksum p2/db | cut -d' ' -f1)" ] ||
  fail "B differs from A after the live rebuild"

# kill -9 of the target in the middle of a rebuild, then resume
"$PY" - <<'PY'
import os, sys, time
sys.path.insert(0, "tests/integration")
from viohelp import Ctl
ctl = Ctl(os.environ["SOCK"])
job = ctl.call("vol.replica_add", name="tank/db", replica="127.0.0.1:%s/p3" % os.environ["RC"])["job"]
while True:                                # until C has committed at least half of the copy
    j = ctl.call("job.get", id=job)
    assert j["state"] == "running", j
    st = ctl.call("vol.status", name="tank/db")
    rb = [r for r in st["replicas"] if r["pool"] == "p3"][0].get("rebuild", {})
    if j["total"] and rb.get("durable_cursor", 0) >= 48 << 20:
        break
    time.sleep(0.05)
open(os.environ["T"] + "/first_total", "w").write(str(j["total"]))
print("killing C at %d of %d bytes, its durable cursor at %d" % (j["done"], j["total"], rb["durable_cursor"]))
PY
kill -9 "$CASKD_C_PID"; wait "$CASKD_C_PID" 2>/dev/null || true; CASKD_C_PID=
for _ in $(seq 1 1200); do
  st=$($CASK job list -H -o kind,state | awk '$1 == "rebuild" {s=$2} END {print s}')
  [ "$st" != running ] && break; sleep 0.05
done
[ "$st" = failed ] || fail "the rebuild job of the killed target is '$st', not failed"
$CASK vol status tank/db | grep -q "127.0.0.1:$RC/p3 *degraded" || fail "C is not degraded: $($CASK vol status tank/db)"
start_c
out=$($CASK vol replica rebuild tank/db "127.0.0.1:$RC/p3" --wait) || fail "resume: $out"
echo "$out"
"$PY" - <<'PY'
import os, sys
sys.path.insert(0, "tests/integration")
from viohelp import Ctl
first = int(open(os.environ["T"] + "/first_total").read())
s = Ctl(os.environ["SOCK"]).call("vol.status", name="tank/db")
c = [r for r in s["replicas"] if r["pool"] == "p3"][0]
rb = c["rebuild"]
print("resumed: transferred %d bytes, the first copy listed %d" % (rb["transferred"], first))
assert c["state"] == "in-sync" and rb["kind"] == "full", s
assert rb["transferred"] < first * 3 // 4, (rb, first)   # what was committed before the kill is kept
PY
[ "$($CASK vol checksum tank/db | cut -d' ' -f1)" = "$(C vol checksum p3/db | cut -d' ' -f1)" ] ||
  fail "C differs from A after the resumed rebuild"
stop_caskd
kill -TERM "$CASKD_B_PID" "$CASKD_C_PID"; wait "$CASKD_B_PID" "$CASKD_C_PID" 2>/dev/null || true
CASKD_B_PID=; CASKD_C_PID=
for v in tank p2 p3; do
  "$CASK_BUILD/cask-debug" check "$T/$v.vdev" > "$T/check.out" 2>&1 || { cat "$T/check.out"; fail "cask-debug check $v"; }
done
echo "ok: live writes during a rebuild kept; a killed target resumes from its cursor"
