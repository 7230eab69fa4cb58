#!/usr/bin/env bash
# repl_service -- caskd --replica-listen against a test peer written from
# docs/replica-protocol.md (replpeer.py): handshake with the peer key
# (wrong key, no key and a protocol-version mismatch are refused with their
# codes), CREATE, START_EPOCH, sequenced writes applied in order and read
# back, FLUSH durable across kill -9, a replica volume refusing NBD writes,
# and the fencing rules enforced by the replica: a second controller's
# PREPARE makes every later frame of the old epoch STALE_EPOCH (on the old,
# still open connection), an older or racing epoch is refused, resume after a
# takeover is PROMISED_ELSEWHERE, out-of-sequence and damaged frames are
# refused and never applied. cask-debug check is clean at the end.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
RPORT=$(free_port)
head -c 48 /dev/urandom | base64 > "$T/peer.key"; chmod 600 "$T/peer.key"
# no key and no --insecure-peers: refused at start
rc=0; "$CASKD" --state "$T/st0" --socket "$T/s0.sock" --nbd "127.0.0.1:$(free_port)" \
  --replica-listen "127.0.0.1:$RPORT" >"$T/refuse.log" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "needs --peer-key" "$T/refuse.log" || fail "caskd started replication without a key ($rc)"
chmod 644 "$T/peer.key"; rc=0
"$CASKD" --state "$T/st0" --socket "$T/s0.sock" --peer-key "$T/peer.key" \
  --replica-listen "127.0.0.1:$RPORT" >"$T/refuse.log" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "readable by group" "$T/refuse.log" || fail "a world-readable key was accepted"
chmod 600 "$T/peer.key"
start_caskd --replica-listen "127.0.0.1:$RPORT" --peer-key "$T/peer.key"
$CASK pool create p2 "$T/p2.vdev" --size 256M >/dev/null
export RADDR="127.0.0.1:$RPORT" KEYFILE="$T/peer.key" CASK_TEST_NBD="$NBD" TDIR="$T"
"$PY" - <<'PY'
import os, sys, struct, nbd
sys.path.insert(0, os.path.join(os.environ.get("TOP", "."), "tests/integration"))
from replpeer import Peer, PeerError, membership, frame, T
addr, key = os.environ["RADDR"], open(os.environ["KEYFILE"], "rb").read().rstrip(b"\n")

def refused(code, fn):
    try:
        fn()
    except PeerError as e:
        assert e.code == code, "%s, want %s (%s)" % (e.code, code, e.msg)
        return e
    raise AssertionError("not refused; want " + code)

# authentication and versions
refused("AUTH_FAILED", lambda: Peer(addr, key=b"w" * 48).handshake())
refused("AUTH_REQUIRED", lambda: Peer(addr, insecure=True).handshake())
e = refused("VERSION_MISMATCH", lambda: Peer(addr, key=key, versions=(2, 3)).handshake())
assert e.fields["value"] == 2 | 3 << 16 and "2..3" in e.msg, e.fields

def blk(s, n=4096):
    return (struct.pack("<Q", s) * (n // 8))

uuid, node = os.urandom(16), 0x1111222233334444
c = Peer(addr, key=key); c.handshake()
st = c.create("p2", "db", 8 << 20, (1, node), uuid)
assert st["promised"] == (1, node) and st["applied"] == 0 and st["state"] == 1, st
me = (st["id"], st["pool_guid"], addr, "p2")
c.start_epoch(0, membership((1, node), 1, [me]))
for s in range(1, 51):
    c.write(s, s * 4096, blk(s))
assert c.wait_applied(50) == 50
assert c.flush(50) >= 50
for s in (1, 25, 50):
    assert c.read(s * 4096, 4096, min_seq=50) == blk(s)
refused("LAGGING", lambda: c.read(0, 4096, min_seq=51))
# the replica volume is read-only to everyone else
h = nbd.NBD(); h.connect_uri(os.environ["CASK_TEST_NBD"] + "/p2/db")
assert h.pread(4096, 25 * 4096) == blk(25)
try:
    h.pwrite(b"x" * 4096, 0); h.flush()
    raise AssertionError("an NBD write to a replica volume was accepted")
except nbd.Error:
    pass
h.shutdown()
# a second connection to the volume is not the session
o = Peer(addr, key=key); o.handshake(); o.attach("p2", "db", uuid)
refused("NOT_SESSION", lambda: (o.write(51, 0, blk(99)), o.expect("APPLIED")))
refused("WRONG_VOLUME", lambda: (lambda p: (p.handshake(), p.attach("p2", "db", b"x" * 16)))(Peer(addr, key=key)))
# out of sequence: refused, connection closed, nothing applied
refused("SEQUENCE_GAP", lambda: (c.write(52, 0, blk(99)), c.expect("APPLIED")))
# the controller comes back (same epoch, a repeat of its promise) and goes on
c = Peer(addr, key=key); c.handshake(); st = c.attach("p2", "db", uuid)
assert st["applied"] == 50 and st["promised"] == (1, node), st
c.prepare((1, node), mode=1, expect=(1, node))  # a repeat of the promise: answered again
refused("EPOCH_REFUSED", lambda: c.start_epoch(50, membership((1, node), 2, [me])))  # started already
c = Peer(addr, key=key); c.handshake(); st = c.attach("p2", "db", uuid)
c.prepare((2, node), mode=1, expect=(1, node))   # a reconnecting controller prepares a new epoch
c.start_epoch(50, membership((2, node), 1, [me]))
c.write(51, 51 * 4096, blk(51)); assert c.wait_applied(51) == 51
# a damaged frame: refused before anything in it is used
bad = bytearray(frame(T["WRITE"], struct.pack("<QII", 0, 4096, 0) + blk(77), 0, (2, node), 52, 99))
bad[64 + 16 + 100] ^= 4
c.send_raw(bytes(bad))
refused("BAD_CHECKSUM", lambda: c.expect("APPLIED"))
# takeover: a newer epoch is promised on another connection
c = Peer(addr, key=key); c.handshake(); c.attach("p2", "db", uuid)
c.prepare((3, node), mode=1, expect=(2, node)); c.start_epoch(51, membership((3, node), 1, [me]))
n = Peer(addr, key=key); n.handshake(); n.attach("p2", "db", uuid)
st = n.prepare((4, 0x999), mode=2, addr="newhost:7400")
assert st["promised"] == (4, 0x999) and st["applied"] == 51, st
# the old controller's next frame, on its open connection, is refused
e = refused("STALE_EPOCH", lambda: (c.write(52, 52 * 4096, blk(52)), c.expect("APPLIED")))
assert e.fields["epoch"] == (4, 0x999) and e.fields["addr"] == "newhost:7400", e.fields
# an older epoch and a racing lower one are refused too; resume after the takeover is refused
r = Peer(addr, key=key); r.handshake(); r.attach("p2", "db", uuid)
refused("STALE_EPOCH", lambda: r.prepare((4, 0x998)))
r = Peer(addr, key=key); r.handshake(); r.attach("p2", "db", uuid)
refused("PROMISED_ELSEWHERE", lambda: r.prepare((5, node), mode=1, expect=(3, node)))
# the new controller serves
n.start_epoch(51, membership((4, 0x999), 1, [me]))
for s in range(52, 61):
    n.write(s, s * 4096, blk(s))
assert n.flush(60) >= 60
assert n.read(52 * 4096, 4096) == blk(52) and n.read(0, 4096) == b"\0" * 4096
print("service: ok")
PY
kill -KILL "$CASKD_PID"; wait "$CASKD_PID" 2>/dev/null || true; CASKD_PID=
start_caskd --replica-listen "127.0.0.1:$RPORT" --peer-key "$T/peer.key"
"$PY" - <<'PY'
import os, sys, struct
sys.path.insert(0, "tests/integration")
from replpeer import Peer
addr, key = os.environ["RADDR"], open(os.environ["KEYFILE"], "rb").read().rstrip(b"\n")
c = Peer(addr, key=key); c.handshake()
# the uuid is not known here: STATUS of an ATTACH with the wrong one names WRONG_VOLUME, so read it by NBD
import nbd
h = nbd.NBD(); h.connect_uri(os.environ["CASK_TEST_NBD"] + "/p2/db")
for s in (1, 51, 60):
    assert h.pread(4096, s * 4096) == struct.pack("<Q", s) * 512, s
print("after kill -9: flushed writes are there")
PY
$CASK vol list >/dev/null
stop_caskd
"$CASK_BUILD/cask-debug" check "$T/p2.vdev" > "$T/check.out" || { cat "$T/check.out"; fail "cask-debug check"; }
echo ok
