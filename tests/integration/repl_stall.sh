#!/usr/bin/env bash
# repl_stall -- a replica that stops answering (tests/tools/faultproxy.py
# holds every byte the controller sends it; the connection stays open):
#   - at consistency quorum (3-way), writes and flushes go on while C is
#     held, C misses its deadline and is ejected (reason timeout);
#   - at consistency all (2-way), a write waits for the held replica, then
#     is answered once B's ejection is committed (deadline 1000 ms); and the
#     ejection survives kill -9 of the controller's caskd right after: the
#     local replica's record, read back over the replica protocol after the
#     restart, holds membership version 2 with B degraded (timeout).
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
head -c 48 /dev/urandom | base64 > "$T/peer.key"; chmod 600 "$T/peer.key"
RA=$(free_port); RB=$(free_port); RC=$(free_port)
start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RA"
start_caskd_b --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RB"
PORT_C=$(free_port); SOCK_C="$T/run_c/caskd.sock"
"$CASKD" --state "$T/state_c" --socket "$SOCK_C" --nbd "127.0.0.1:$PORT_C" --peer-key "$T/peer.key" \
  --replica-listen "127.0.0.1:$RC" >>"$T/caskd_c.log" 2>&1 &
CASKD_C_PID=$!
wait_caskd "caskd C" "$CASKD_C_PID" "$SOCK_C" "$T/caskd_c.log"
$CASK pool create tank "$T/tank.vdev" --size 512M >/dev/null
CASK_SOCKET="$SOCK_B" $CASK pool create p2 "$T/p2.vdev" --size 512M >/dev/null
CASK_SOCKET="$SOCK_C" $CASK pool create p3 "$T/p3.vdev" --size 512M >/dev/null
export SOCK NBD RB RC RA KEYFILE="$T/peer.key" TDIR="$T" TOP="$PWD"
"$PY" - <<'PY'
import os, sys, struct, time, json, nbd
sys.path.insert(0, "tests/integration"); sys.path.insert(0, "tests/tools")
from viohelp import Ctl
from faultproxy import FaultProxy
T = os.environ["TDIR"]
fp = FaultProxy(T + "/proxy.sock", {"b": ("127.0.0.1:0", "127.0.0.1:" + os.environ["RB"]),
                                     "c": ("127.0.0.1:0", "127.0.0.1:" + os.environ["RC"]),
                                     "ba": ("127.0.0.1:0", "127.0.0.1:" + os.environ["RB"])},
                log=T + "/proxy.log")
try:
    ctl = Ctl(os.environ["SOCK"])
    via = lambda link, pool: "127.0.0.1:%d/%s" % (fp.port(link), pool)
    ctl.call("vol.create", name="tank/q", size=32 << 20, replicas=[via("b", "p2"), via("c", "p3")],
             props={"consistency": "quorum", "repl_deadline": "1000"})
    ctl.call("vol.create", name="tank/a", size=16 << 20, replicas=[via("ba", "p2")],
             props={"consistency": "all", "repl_deadline": "1000"})
    st = ctl.call("vol.status", name="tank/a")
    json.dump(st, open(T + "/a.status", "w"))
    q = nbd.NBD(); q.connect_uri(os.environ["NBD"] + "/tank/q")
    a = nbd.NBD(); a.connect_uri(os.environ["NBD"] + "/tank/a")
    for b in range(64):
        q.pwrite(bytes([b + 1]) * 4096, b * 4096)
        a.pwrite(bytes([b + 1]) * 4096, b * 4096)
    q.flush(); a.flush()
    # quorum: C held, writes go on
    fp.cmd("hold c c2r")
    for b in range(64, 256):
        q.pwrite(bytes([b % 250 + 1]) * 4096, b * 4096)
        if b % 32 == 0:
            q.flush()
    q.flush()
    for _ in range(600):
        s = ctl.call("vol.status", name="tank/q")
        if s["membership_version"] >= 2:
            break
        time.sleep(0.05)
    c = [r for r in s["replicas"] if r["pool"] == "p3"][0]
    assert c["state"] == "degraded" and c["reason"] == "timeout" and s["state"] == "serving", s
    for b in (0, 100, 255):
        assert q.pread(4096, b * 4096) == bytes([b % 250 + 1 if b >= 64 else b + 1]) * 4096
    print("quorum: 192 writes answered while C was held; C ejected (%s)" % c["reason"])
    # all: B held; the write is answered after B's ejection
    fp.cmd("hold ba c2r")
    a.pwrite(b"\xab" * 4096, 0)
    a.flush()
    s = ctl.call("vol.status", name="tank/a")
    b = [r for r in s["replicas"] if r["pool"] == "p2"][0]
    assert s["membership_version"] == 2 and b["state"] == "degraded" and b["reason"] == "timeout", s
    assert a.pread(4096, 0) == b"\xab" * 4096
    print("all: the write waited for B's ejection (membership version 2), then was answered")
finally:
    fp.close()
PY
# kill -9 of the controller right after: the ejection is on the local replica's disk
kill -KILL "$CASKD_PID"; wait "$CASKD_PID" 2>/dev/null || true; CASKD_PID=
start_caskd --peer-key "$T/peer.key" --replica-listen "127.0.0.1:$RA"
"$PY" - <<'PY'
import os, sys, json
sys.path.insert(0, "tests/integration")
from replpeer import Peer
st0 = json.load(open(os.environ["TDIR"] + "/a.status"))
p = Peer("127.0.0.1:" + os.environ["RA"], key=open(os.environ["KEYFILE"], "rb").read().rstrip(b"\n"))
p.handshake()
st = p.attach("tank", "a", bytes.fromhex(st0["uuid"]))
states = {m["pool"]: (m["state"], m["reason"]) for m in st["members"]}
assert st["mb_version"] == 2 and states == {"tank": (1, 0), "p2": (3, 1)}, (st["mb_version"], states)
print("after kill -9 of the controller: the local record holds version 2, B degraded (timeout)")
PY
stop_caskd
"$CASK_BUILD/cask-debug" check "$T/tank.vdev" > "$T/check.out" || { cat "$T/check.out"; fail "cask-debug check"; }
echo ok
