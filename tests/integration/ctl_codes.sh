#!/usr/bin/env bash
# ctl_codes -- each failure the control protocol gives a specific stable
# code for (docs/control-protocol.md) gets exactly that code: destroy
# refusals (HAS_SNAPSHOTS, HAS_CLONES, SNAPSHOT_HELD, BUSY for an open
# volume), promote, rollback, holds, names that exist, and the job codes
# of send and receive (WRONG_BASE, TARGET_CHANGED, VOLUME_EXISTS,
# SNAPSHOT_EXISTS, TRUNCATED_STREAM, BAD_STREAM, NOT_A_PARTIAL_RECEIVE ...).
# These codes are part of the frozen client API: they must not change when
# the engine's messages are reworded.
source "$(dirname "$0")/lib.sh"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
start_caskd
$CASK pool create tank "$T/t.vdev" --size 256M
SOCK="$SOCK" PORT="$PORT" T="$T" "$PY" - <<'PY'
import json, os, socket, struct, time
path, T = os.environ["SOCK"], os.environ["T"]
s = socket.socket(socket.AF_UNIX); s.connect(path); s.settimeout(60)
seq = [0]
def call(op, fd=None, **args):
    seq[0] += 1
    data = json.dumps({"op": op, "args": args}).encode()
    h = struct.pack("<IHHII", 0x4b534143, 1, 1, seq[0], len(data))
    if fd is None:
        s.sendall(h + data)
    else:
        socket.send_fds(s, [h], [fd]); s.sendall(data)
    h = b""
    while len(h) < 16: h += s.recv(16 - len(h))
    n = struct.unpack("<IHHII", h)[4]
    body = b""
    while len(body) < n: body += s.recv(n - len(body))
    return json.loads(body)
def ok(op, **a):
    r = call(op, **a); assert r["ok"], (op, a, r); return r["result"]
def code(want, op, fd=None, **a):
    r = call(op, fd=fd, **a)
    assert not r["ok"], (op, a, "succeeded; want", want)
    e = r["error"]
    assert e["code"] == want and e["errno"] > 0 and e["message"], (op, a, "want", want, e)
    return e
M = 1 << 20
def nbd_write(export, off, data):
    """write through NBD; the connection (and so the volume) closes after"""
    n = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])))
    assert n.recv(18, socket.MSG_WAITALL)[:16] == b"NBDMAGICIHAVEOPT"
    n.sendall(struct.pack(">I", 3) + b"IHAVEOPT" + struct.pack(">II", 1, len(export)) + export.encode())
    n.recv(10, socket.MSG_WAITALL)
    n.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, 1, off, len(data)) + data)
    assert struct.unpack(">IIQ", n.recv(16, socket.MSG_WAITALL))[1] == 0
    n.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 2, 0, 0))  # disconnect
    n.close()
# names that exist, and names that do not
code("POOL_EXISTS", "pool.create", name="tank", paths=[T + "/t2.vdev"], size=64 * M)
code("POOL_NOT_FOUND", "pool.status", name="nope")
code("POOL_NOT_FOUND", "vol.create", name="nope/v", size=M)
ok("vol.create", name="tank/v", size=16 * M)
code("VOLUME_EXISTS", "vol.create", name="tank/v", size=M)
code("VOLUME_NOT_FOUND", "vol.get", name="tank/none")
code("VOLUME_NOT_FOUND", "vol.destroy", name="tank/none")
code("INVALID_ARGUMENT", "vol.create", name="tank/bad name", size=M)
# properties: parsed by the engine (ce_vol_props_parse); a null value is refused, not a crash
code("INVALID_ARGUMENT", "vol.create", name="tank/n", size=M, props={"compression": "gzip"})
code("INVALID_ARGUMENT", "vol.create", name="tank/n", size=M, props={"compression": None})
code("INVALID_ARGUMENT", "vol.create", name="tank/n", size=M, props={"color": "red"})
assert ok("hello")["protocol"] == 1
ok("snap.create", names=["tank/v@a"])
e = code("INVALID_ARGUMENT", "snap.create", names=["tank/v@a", "tank/none@a"])
assert sorted((i["name"], i["code"]) for i in e["errors"]) == [("tank/none@a", "VOLUME_NOT_FOUND"),
                                                             ("tank/v@a", "SNAPSHOT_EXISTS")], e
code("SNAPSHOT_NOT_FOUND", "snap.destroy", name="tank/v@none")
code("SNAPSHOT_NOT_FOUND", "vol.clone", name="tank/v@none", new_name="tank/c0")
code("SNAPSHOT_NOT_FOUND", "vol.rollback", name="tank/v@none")
ok("snap.create", names=["tank/v@b"])
code("SNAPSHOT_EXISTS", "snap.rename", name="tank/v@a", new_name="b")
code("HAS_NEWER_SNAPSHOTS", "vol.rollback", name="tank/v@a")
# destroy refusals
code("HAS_SNAPSHOTS", "vol.destroy", name="tank/v")
ok("snap.hold", tag="keep", names=["tank/v@a"])
code("HOLD_EXISTS", "snap.hold", tag="keep", names=["tank/v@a"])
code("HOLD_NOT_FOUND", "snap.release", tag="other", names=["tank/v@a"])
code("SNAPSHOT_NOT_FOUND", "snap.hold", tag="keep", names=["tank/v@none"])
code("SNAPSHOT_HELD", "snap.destroy", name="tank/v@a")
code("SNAPSHOT_HELD", "snap.destroy", names=["tank/v@a"])
code("SNAPSHOT_HELD", "vol.destroy", name="tank/v", recursive=True)
ok("snap.release", tag="keep", names=["tank/v@a"])
ok("vol.clone", name="tank/v@a", new_name="tank/c")
code("VOLUME_EXISTS", "vol.clone", name="tank/v@a", new_name="tank/c")
code("BUSY", "snap.destroy", name="tank/v@a")
code("HAS_CLONES", "vol.destroy", name="tank/v", recursive=True)
code("NOT_A_CLONE", "vol.promote", name="tank/v")
ok("snap.create", names=["tank/c@a"])
code("SNAPSHOT_EXISTS", "vol.promote", name="tank/c")
# an open volume (an NBD client on it)
n = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])))
assert n.recv(18, socket.MSG_WAITALL)[:16] == b"NBDMAGICIHAVEOPT"
n.sendall(struct.pack(">I", 3) + b"IHAVEOPT" + struct.pack(">II", 1, 6) + b"tank/c")
n.recv(10, socket.MSG_WAITALL)
e = code("BUSY", "vol.destroy", name="tank/c", recursive=True)
assert "in use" in e["message"], e
n.close()
# send and receive: the job's own codes, with and without "wait"
def stream(name, **a):
    fn = "%s/%s.stream" % (T, name.replace("/", "_").replace("@", "_"))
    with open(fn, "wb") as f:
        ok("vol.send", fd=f.fileno(), name=name, wait=True, **a)
    return fn
def recv(want, fn, name, **a):
    with open(fn, "rb") as f:
        if want is None:
            return ok("vol.recv", fd=f.fileno(), name=name, wait=True, **a)
        return code(want, "vol.recv", fd=f.fileno(), name=name, wait=True, **a)
ok("vol.create", name="tank/w", size=16 * M)
ok("snap.create", names=["tank/w@1"])
full = stream("tank/w@1")
for _ in range(1200):  # until caskd has closed tank/c (the NBD client above has gone)
    r = call("vol.destroy", name="tank/c", recursive=True)
    if r["ok"]:
        break
    time.sleep(0.05)
assert r["ok"], r
nbd_write("tank/w", 0, os.urandom(256 << 10))
ok("snap.create", names=["tank/w@2"])
incr = stream("tank/w@2", **{"from": "@1"})
ok("snap.create", names=["tank/w@3"])
incr23 = stream("tank/w@3", **{"from": "@2"})
with open(T + "/none.stream", "wb") as f:
    code("SNAPSHOT_NOT_FOUND", "vol.send", fd=f.fileno(), name="tank/w@none", wait=True)
    code("POOL_NOT_FOUND", "vol.send", fd=f.fileno(), name="nope/w@1", wait=True)
recv("VOLUME_EXISTS", full, "tank/w")
recv("VOLUME_NOT_FOUND", incr, "tank/r")
recv("INVALID_ARGUMENT", T + "/t.vdev", "tank/junk")
recv(None, full, "tank/r")
recv("WRONG_BASE", incr23, "tank/r")
with open(incr23, "rb") as f:  # the same, read from the job
    j = ok("vol.recv", fd=f.fileno(), name="tank/r")["job"]
j = ok("job.wait", id=j)
assert j["state"] == "failed" and j["error"]["code"] == "WRONG_BASE", j
code("NOT_A_PARTIAL_RECEIVE", "vol.recv_abandon", name="tank/r")
# the base snapshot renamed to what the stream would create
ok("snap.rename", name="tank/r@1", new_name="2")
recv("SNAPSHOT_EXISTS", incr, "tank/r")
# the target written since its base
recv(None, full, "tank/y")
nbd_write("tank/y", 0, b"x" * 4096)
for _ in range(1200):  # until caskd has seen the NBD client go and closed the volume
    with open(incr, "rb") as f:
        r = call("vol.recv", fd=f.fileno(), name="tank/y", wait=True)
    if r["ok"] or r["error"]["code"] != "BUSY":
        break
    time.sleep(0.05)
assert not r["ok"] and r["error"]["code"] == "TARGET_CHANGED", r
# damaged and truncated streams
data = open(incr, "rb").read()
with open(T + "/cut.stream", "wb") as f: f.write(data[:len(data) // 2])
bad = bytearray(data); bad[len(data) // 2] ^= 0xff
with open(T + "/bad.stream", "wb") as f: f.write(bad)
recv(None, full, "tank/z")
recv("BAD_STREAM", T + "/bad.stream", "tank/z")
ok("vol.recv_abandon", name="tank/z")
recv("TRUNCATED_STREAM", T + "/cut.stream", "tank/z")
tok = ok("vol.get", name="tank/z")["receive_resume_token"]
with open(T + "/resume.stream", "wb") as f:
    ok("vol.send", fd=f.fileno(), token=tok, wait=True)
ok("vol.recv_abandon", name="tank/z")
recv("NOT_A_PARTIAL_RECEIVE", T + "/resume.stream", "tank/z")
print("ok")
PY
stop_caskd
! grep -q "AddressSanitizer\|runtime error" "$T/caskd.log" || fail "sanitizer report in the caskd log"
echo ok
