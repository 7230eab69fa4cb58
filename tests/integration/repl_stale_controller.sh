#!/usr/bin/env bash
# repl_stale_controller -- a partitioned controller and its late frames
# (tests/tools/faultproxy.py between A and its replicas B and C, quorum):
# the proxy holds everything A sends B and C; A's write cannot reach k and is
# never acknowledged (it fails with EIO once A's lease lapses, replication.md
# 3.3 item 7); a newer controller is promised by B and C (PREPARE over their
# unproxied ports); then the held frames are released: B and C refuse them
# with STALE_EPOCH (nothing of them is applied), A fences the volume, the
# pending write fails with EIO and nothing is acknowledged after that.
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
$CASK pool create tank "$T/tank.vdev" --size 256M >/dev/null
CASK_SOCKET="$SOCK_B" $CASK pool create p2 "$T/p2.vdev" --size 256M >/dev/null
CASK_SOCKET="$SOCK_C" $CASK pool create p3 "$T/p3.vdev" --size 256M >/dev/null
export SOCK NBD RB RC KEYFILE="$T/peer.key" TDIR="$T"
"$PY" - <<'PY'
import os, sys, time, nbd
sys.path.insert(0, "tests/integration"); sys.path.insert(0, "tests/tools")
from viohelp import Ctl
from faultproxy import FaultProxy
from replpeer import Peer
T = os.environ["TDIR"]
key = open(os.environ["KEYFILE"], "rb").read().rstrip(b"\n")
rb, rc = "127.0.0.1:" + os.environ["RB"], "127.0.0.1:" + os.environ["RC"]
fp = FaultProxy(T + "/proxy.sock", {"b": ("127.0.0.1:0", rb), "c": ("127.0.0.1:0", rc)}, log=T + "/proxy.log")
try:
    ctl = Ctl(os.environ["SOCK"])
    ctl.call("vol.create", name="tank/s", size=16 << 20, props={"consistency": "quorum", "repl_deadline": "60000"},
             replicas=["127.0.0.1:%d/p2" % fp.port("b"), "127.0.0.1:%d/p3" % fp.port("c")])
    uuid = bytes.fromhex(ctl.call("vol.status", name="tank/s")["uuid"])
    h = nbd.NBD(); h.connect_uri(os.environ["NBD"] + "/tank/s")
    for b in range(32):
        h.pwrite(bytes([b + 1]) * 4096, b * 4096)
    h.flush()
    seq0 = ctl.call("vol.status", name="tank/s")["seq"]
    # partition: A's frames to B and C are held
    fp.cmd("hold b c2r"); fp.cmd("hold c c2r")
    cookie = h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b"\xee" * 4096)), 0)
    fp.cmd("wait b c2r.queued >= 4096 30"); fp.cmd("wait c c2r.queued >= 4096 30")
    failed = []
    def not_acked(ck):
        """Not answered, or answered with an error (EIO once the lease lapsed): never acknowledged."""
        if failed:
            return True
        try:
            return not h.aio_command_completed(ck)
        except nbd.Error as e:
            failed.append(e)
            return True
    for _ in range(10):
        h.poll(50)           # let any (wrong) answer arrive
    assert not_acked(cookie), "a write was answered without a quorum"
    # a newer controller: B and C promise epoch 50
    for addr, pool in ((rb, "p2"), (rc, "p3")):
        p = Peer(addr, key=key); p.handshake(); st = p.attach(pool, "s", uuid)
        assert st["applied"] == seq0, (pool, st["applied"], seq0)
        p.prepare((50, 0xabc), mode=2, addr="new:7400")
        p.close()
    h.poll(50)
    assert not_acked(cookie), "a write was acknowledged by a partitioned controller"
    # heal: the late frames reach B and C and are refused
    fp.cmd("release b c2r"); fp.cmd("release c c2r")
    err = failed[0] if failed else None
    for _ in range(600 if err is None else 0):
        try:
            if h.aio_command_completed(cookie):
                break
        except nbd.Error as e:
            err = e
            break
        h.poll(100)
    assert err is not None, "the late write was acknowledged"
    for _ in range(600):  # the released frames (writes, KEEPALIVEs) are refused: fenced
        s = ctl.call("vol.status", name="tank/s")
        if s["state"] == "fenced":
            break
        time.sleep(0.05)
    assert s["state"] == "fenced" and "STALE_EPOCH" in s["fenced_by"], s
    for addr, pool in ((rb, "p2"), (rc, "p3")):
        p = Peer(addr, key=key); p.handshake(); st = p.attach(pool, "s", uuid)
        assert st["applied"] == seq0 and st["promised"] == (50, 0xabc), (pool, st)
    try:
        h.pwrite(b"z" * 4096, 8192)
        raise AssertionError("a fenced controller acknowledged a write")
    except nbd.Error:
        pass
    print("stale controller: the held write was never answered; its late frames were refused by B and C "
          "(applied stays %d); A fenced: %s" % (seq0, s["fenced_by"][:50]))
finally:
    fp.close()
PY
stop_caskd
"$CASK_BUILD/cask-debug" check "$T/tank.vdev" > "$T/check.out" || { cat "$T/check.out"; fail "cask-debug check"; }
echo ok
