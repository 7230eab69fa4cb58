#!/usr/bin/env bash
# rebuild_auto -- the rebuild_wait policy (docs/replication.md 12.8 and
# 12.12): with -o rebuild_wait=SECONDS a degraded replica that comes back
# is rebuilt by itself, with no command -- a delta when it was away for at
# most SECONDS (db1, 600), a full copy when longer (db2, 1 s, away for
# more) -- and then equals the controller's replica. A volume without the
# option (db3) is left degraded until `vol replica rebuild`.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
head -c 48 /dev/urandom | base64 > "$T/peer.key"; chmod 600 "$T/peer.key"
RB=$(free_port)
start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$(free_port)"
start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
B() { CASK_SOCKET="$SOCK_B" "$CASK" "$@"; }
$CASK pool create tank "$T/tank.vdev" --size 1G >/dev/null
B pool create p2 "$T/p2.vdev" --size 1G >/dev/null
$CASK vol create tank/db1 --size 64M --replica "127.0.0.1:$RB/p2" -o consistency=all -o rebuild_wait=600
$CASK vol create tank/db2 --size 64M --replica "127.0.0.1:$RB/p2" -o consistency=all -o rebuild_wait=1
$CASK vol create tank/db3 --size 64M --replica "127.0.0.1:$RB/p2" -o consistency=all
expect_fail 2 "rebuild_wait" "$CASK" vol create tank/x --size 1M -o rebuild_wait=5
kill -9 "$CASKD_B_PID"; wait "$CASKD_B_PID" 2>/dev/null || true; CASKD_B_PID=
export NBD SOCK
"$PY" - <<'PY'
import os, random, nbd
rnd = random.Random(12)
for v in ("db1", "db2", "db3"):
    h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/" + v)
    for i in range(8):
        h.pwrite(rnd.randbytes(1 << 20), rnd.randrange(0, 63) << 20)
    h.flush(); h.shutdown()
PY
sleep 2                                      # db2's replica is away for longer than its rebuild_wait
PORT_B= start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
"$PY" - <<'PY'
import os, sys, time
sys.path.insert(0, "tests/integration")
from viohelp import Ctl
ctl = Ctl(os.environ["SOCK"])
def b(v):
    s = ctl.call("vol.status", name="tank/" + v)
    return [r for r in s["replicas"] if r["pool"] == "p2"][0]
for _ in range(600):
    if b("db1")["state"] == "in-sync" and b("db2")["state"] == "in-sync":
        break
    time.sleep(0.1)
r1, r2, r3 = b("db1"), b("db2"), b("db3")
print("db1: %s %s, db2: %s %s, db3: %s" % (r1["state"], r1.get("rebuild", {}).get("kind"), r2["state"],
      r2.get("rebuild", {}).get("kind"), r3["state"]))
assert r1["state"] == "in-sync" and r1["rebuild"]["kind"] == "delta", r1
assert r2["state"] == "in-sync" and r2["rebuild"]["kind"] == "full", r2
assert r3["state"] == "degraded" and "rebuild" not in r3, r3
PY
for v in db1 db2; do
  [ "$($CASK vol checksum tank/$v | cut -d' ' -f1)" = "$(B vol checksum p2/$v | cut -d' ' -f1)" ] ||
    fail "$v differs after its automatic rebuild"
done
$CASK vol replica rebuild tank/db3 "127.0.0.1:$RB/p2" --wait
[ "$($CASK vol checksum tank/db3 | cut -d' ' -f1)" = "$(B vol checksum p2/db3 | cut -d' ' -f1)" ] ||
  fail "db3 differs after its rebuild"
stop_caskd
kill -TERM "$CASKD_B_PID"; wait "$CASKD_B_PID" 2>/dev/null || true; CASKD_B_PID=
echo "ok: rebuild_wait rebuilds a returning replica by itself (delta within it, full after)"
