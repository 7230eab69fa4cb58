#!/usr/bin/env bash
# repl_quorum -- synchronous replication end to end with three real caskd
# processes on loopback (each its own state directory and pool):
#   - vol.create tank/db with replicas on B and C (consistency quorum) and
#     tank/db2 with a replica on B (consistency all); NBD writes and FLUSH
#     through the controller on A; every replica in sync (vol.status);
#   - kill -9 of C under load: writes and flushes go on at quorum, C shows
#     offline/degraded, the ejection is a new membership version; every
#     write acknowledged before and after is on B (read from B's NBD export
#     of its replica, which refuses writes);
#   - a stale controller: another controller takes B's replica with a newer
#     epoch (PREPARE through replpeer.py); A's next write is refused by B with
#     STALE_EPOCH, A fences the volume (vol.status fenced) and answers EIO --
#     it acknowledges nothing after that;
#   - kill -9 of B under load at consistency all: db2's writes are answered
#     again once B's ejection is committed on the local replica (the
#     commit quorum of a 2-way volume), and every acknowledged write is there.
# cask-debug check is clean on every pool at the end.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
head -c 48 /dev/urandom | base64 > "$T/peer.key"; chmod 600 "$T/peer.key"
RB=$(free_port); RC=$(free_port)
start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$(free_port)"
start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
PORT_C=$(free_port); SOCK_C="$T/run_c/caskd.sock"
"$CASKD" --state "$T/state_c" --socket "$SOCK_C" --nbd "127.0.0.1:$PORT_C" --peer-key "$T/peer.key" \
  --replica-listen "127.0.0.1:$RC" >>"$T/caskd_c.log" 2>&1 &
CASKD_C_PID=$!
wait_caskd "caskd C" "$CASKD_C_PID" "$SOCK_C" "$T/caskd_c.log"
$CASK pool create tank "$T/tank.vdev" --size 512M >/dev/null
CASK_SOCKET="$SOCK_B" $CASK pool create p2 "$T/p2.vdev" --size 512M >/dev/null
CASK_SOCKET="$SOCK_C" $CASK pool create p3 "$T/p3.vdev" --size 512M >/dev/null
export SOCK SOCK_B NBD NBD_B RADDR_B="127.0.0.1:$RB" RADDR_C="127.0.0.1:$RC" KEYFILE="$T/peer.key"
export CASKD_C_PID CASKD_B_PID
# the CLI: a 2-way volume at consistency all
$CASK vol create tank/db2 --size 16M --replica "127.0.0.1:$RB/p2" -o consistency=all -o repl_deadline=3000
$CASK vol status tank/db2 | tee "$T/status.out"
grep -q "consistency all  state serving" "$T/status.out" || fail "vol status: $(cat "$T/status.out")"
grep -q "127.0.0.1:$RB/p2 *in-sync *up" "$T/status.out" || fail "vol status shows no in-sync replica on B"
expect_fail 1 "not a replicated volume" $CASK vol status tank/nope
"$PY" - <<'PY'
import os, sys, struct, signal, time, nbd
sys.path.insert(0, "tests/integration")
from viohelp import Ctl
from replpeer import Peer, membership
ctl = Ctl(os.environ["SOCK"])
rb, rc = os.environ["RADDR_B"], os.environ["RADDR_C"]
st = ctl.call("vol.create", name="tank/db", size=64 << 20, replicas=[rb + "/p2", rc + "/p3"],
              props={"consistency": "quorum"})
assert st["consistency"] == "quorum" and st["state"] == "serving" and len(st["replicas"]) == 3, st

def tag(vol, blk, gen):
    return struct.pack("<4sQQ", vol.encode()[:4], blk, gen) * (4096 // 20) + b"\0" * (4096 % 20)

want = {"db": {}, "db2": {}}
def writes(h, vol, blocks, gen, flush_every=16):
    for i, b in enumerate(blocks):
        h.pwrite(tag(vol, b, gen), b * 4096)
        want[vol][b] = tag(vol, b, gen)
        if i % flush_every == flush_every - 1:
            h.flush()
    h.flush()

def status(name):
    return ctl.call("vol.status", name=name)

db = nbd.NBD(); db.connect_uri(os.environ["NBD"] + "/tank/db")
db2 = nbd.NBD(); db2.connect_uri(os.environ["NBD"] + "/tank/db2")
writes(db, "db", range(0, 300), 1)
writes(db2, "db2", range(0, 100), 1)
for b in (0, 150, 299):
    assert db.pread(4096, b * 4096) == want["db"][b]
s = status("tank/db")
assert all(r["state"] == "in-sync" and r["link"] == "up" for r in s["replicas"]), s
assert s["seq"] >= 300 and all(r["acked_seq"] == s["seq"] for r in s["replicas"]), s
print("3-way quorum: %d writes acknowledged, every replica at seq %d" % (300, s["seq"]))

# kill -9 of C under load: quorum goes on
os.kill(int(os.environ["CASKD_C_PID"]), signal.SIGKILL)
writes(db, "db", range(300, 600), 2)
writes(db, "db", range(0, 50), 3)
s = status("tank/db")
c = [r for r in s["replicas"] if r["pool"] == "p3"][0]
assert c["link"] == "offline", s
for _ in range(1200):
    s = status("tank/db")
    if s["membership_version"] >= 2:
        break
    time.sleep(0.05)
c = [r for r in s["replicas"] if r["pool"] == "p3"][0]
assert s["membership_version"] == 2 and c["state"] == "degraded" and s["state"] == "serving", s
print("after kill -9 of C: writes go on at quorum; C %s/%s (%s), membership version %d" % (
    c["state"], c["link"], c["reason"], s["membership_version"]))
# every acknowledged write is on B
hb = nbd.NBD(); hb.connect_uri(os.environ["NBD_B"] + "/p2/db")
for b, v in want["db"].items():
    assert hb.pread(4096, b * 4096) == v, "acknowledged write of block %d missing on B" % b
try:
    hb.pwrite(b"x" * 4096, 0); hb.flush()
    raise AssertionError("B's replica accepted an NBD write")
except nbd.Error:
    pass
hb.shutdown()
print("B holds every acknowledged write (%d blocks)" % len(want["db"]))

# a newer controller takes B's replica of db: A is fenced by B
p = Peer(rb, key=open(os.environ["KEYFILE"], "rb").read().rstrip(b"\n")); p.handshake()
p.attach("p2", "db", bytes.fromhex(s["uuid"]))
p.prepare((99, 0x4242), mode=2, addr="elsewhere:7400")
fenced = False
for i in range(20):
    try:
        db.pwrite(tag("db", 7, 100 + i), 7 * 4096); db.flush()
    except nbd.Error:
        fenced = True
        break
for _ in range(1200):  # the write may fail first for want of a lease (B stopped renewing it before it promised)
    s = status("tank/db")  # the next frame A sends B (a write or KEEPALIVE) is refused: fenced
    if s["state"] == "fenced":
        break
    time.sleep(0.05)
assert fenced and s["state"] == "fenced" and "STALE_EPOCH" in s["fenced_by"], s
try:
    db.pwrite(b"y" * 4096, 0); db.flush()
    raise AssertionError("a fenced controller acknowledged a write")
except nbd.Error:
    pass
print("stale controller: fenced by B (%s); writes fail with EIO" % s["fenced_by"][:60])

# consistency all, 2-way: kill -9 of B; writes are answered again after the ejection
os.kill(int(os.environ["CASKD_B_PID"]), signal.SIGKILL)
writes(db2, "db2", range(100, 200), 2)
s = status("tank/db2")
b = [r for r in s["replicas"] if r["pool"] == "p2"][0]
assert s["membership_version"] == 2 and b["state"] == "degraded" and s["state"] == "serving", s
for blk, v in want["db2"].items():
    assert db2.pread(4096, blk * 4096) == v
print("consistency all: B ejected (membership version %d), %d blocks all there" % (s["membership_version"], len(want["db2"])))
db2.shutdown()
PY
$CASK vol status -j tank/db2 | "$PY" -c 'import json,sys; s=json.load(sys.stdin); r=[x for x in s["replicas"] if x["pool"]=="p2"][0]; assert r["state"]=="degraded" and r["link"]=="offline", s'
CASKD_B_PID=; CASKD_C_PID=
stop_caskd
for v in tank p2 p3; do
  "$CASK_BUILD/cask-debug" check "$T/$v.vdev" > "$T/check.out" || { cat "$T/check.out"; fail "cask-debug check $v"; }
done
echo ok
