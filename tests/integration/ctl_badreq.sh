#!/usr/bin/env bash
# ctl_badreq -- malformed control-protocol requests (bad magic, oversized
# frames, wrong version, bad JSON, unknown operations, mistyped arguments)
# each get a structured error; framing errors close only that connection;
# the daemon (sanitizer build) keeps serving.
source "$(dirname "$0")/lib.sh"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
start_caskd
$CASK pool create tank "$T/t.vdev" --size 64M
SOCK="$SOCK" T="$T" "$PY" - <<'PY'
import json, os, socket, struct, sys
path = os.environ["SOCK"]
def conn():
    s = socket.socket(socket.AF_UNIX); s.connect(path); s.settimeout(5); return s
def frame(payload, kind=1, ver=1, magic=0x4b534143, id=7, length=None):
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return struct.pack("<IHHII", magic, ver, kind, id, len(data) if length is None else length) + data
def reply(s):
    h = b""
    while len(h) < 16:
        c = s.recv(16 - len(h))
        if not c: return None
        h += c
    magic, ver, kind, id, n = struct.unpack("<IHHII", h)
    body = b""
    while len(body) < n: body += s.recv(n - len(body))
    assert magic == 0x4b534143 and kind == 2, "response framing"
    return id, json.loads(body)
def err(r, code):
    id, b = r
    assert b["ok"] is False and b["error"]["code"] == code and b["error"]["errno"] > 0 and b["error"]["message"], (code, b)
    return id
def closed(s):
    try: return s.recv(1) == b""
    except ConnectionResetError: return True
# errors that keep the connection
s = conn()
s.sendall(frame({"op": "frobnicate"})); assert err(reply(s), "UNKNOWN_OP") == 7
s.sendall(frame({"op": "vol.create", "args": {"name": "tank/v", "size": "big"}})); err(reply(s), "BAD_REQUEST")
s.sendall(frame({"op": "vol.create", "args": {"name": 5, "size": 1}})); err(reply(s), "BAD_REQUEST")
s.sendall(frame({"op": "vol.create", "args": {"name": "tank/v", "size": -4096}})); err(reply(s), "INVALID_ARGUMENT")
s.sendall(frame({"op": "pool.create", "args": {"name": "x", "paths": "notalist"}})); err(reply(s), "BAD_REQUEST")
s.sendall(frame({"op": "pool.create", "args": {"name": "x", "paths": ["/x"], "force": "yes"}})); err(reply(s), "BAD_REQUEST")
s.sendall(frame({"op": "pool.import", "args": {"paths": ["/x"], "rewind": 1}})); err(reply(s), "BAD_REQUEST")
s.sendall(frame({"op": "pool.create", "args": {"name": "x", "paths": []}})); err(reply(s), "INVALID_ARGUMENT")
s.sendall(frame({"op": "vol.get", "args": []})); err(reply(s), "BAD_REQUEST")
s.sendall(frame({"op": "vol.get", "args": {"name": "tank/none"}}, id=99)); assert err(reply(s), "VOLUME_NOT_FOUND") == 99
s.sendall(frame({"op": "hello"})); id, b = reply(s); assert b["ok"] and b["result"]["protocol"] == 1
# framing errors: an error frame, then the connection is closed
for bad in [frame({"op": "hello"}, magic=0xdeadbeef), frame({"op": "hello"}, ver=2),
            frame({"op": "hello"}, kind=2), frame(b"", length=5 << 20), frame(b"{not json"),
            frame(b"[1,2,3]"), frame(b'{"op": 42}'), frame(b'{"op":"hello"} trailing')]:
    s = conn()
    s.sendall(bad)
    r = reply(s)
    assert r is not None and r[1]["ok"] is False, bad[:20]
    assert r[1]["error"]["code"] in ("BAD_REQUEST", "UNSUPPORTED_VERSION"), r
    assert closed(s), "connection should close after a framing error"
# a client that vanishes mid-frame
s = conn(); s.sendall(frame({"op": "hello"})[:10]); s.close()
s = conn(); s.sendall(struct.pack("<IHHII", 0x4b534143, 1, 1, 1, 1000) + b"{\"op\""); s.close()
# regression nul_suffixed_names (issue 17 item 7): a string argument holding
# a NUL was cut at it -- vol.destroy of "tank/keep\u0000junk" destroyed
# tank/keep.  Every such string is a BAD_REQUEST and nothing is touched.
s = conn()
s.sendall(frame({"op": "vol.create", "args": {"name": "tank/keep", "size": 1 << 20}})); assert reply(s)[1]["ok"]
s.sendall(frame({"op": "vol.create", "args": {"name": "tank/sv", "size": 1 << 20}})); assert reply(s)[1]["ok"]
s.sendall(frame({"op": "snap.create", "args": {"names": ["tank/sv@s1"]}})); assert reply(s)[1]["ok"]
for req in [{"op": "vol.destroy", "args": {"name": "tank/keep\0junk"}},
            {"op": "vol.destroy", "args": {"name": "tank/keep\0"}},
            {"op": "vol.get", "args": {"name": "tank/keep\0/x"}},
            {"op": "vol.rename", "args": {"name": "tank/keep", "new_name": "tank/k\0x"}},
            {"op": "vol.set", "args": {"name": "tank/keep", "prop": "compression", "value": "lz4\0x"}},
            {"op": "vol.set", "args": {"name": "tank/keep", "props": {"compression": "off\0"}}},
            {"op": "vol.create", "args": {"name": "tank/n", "size": 1 << 20, "props": {"compression": "lz4\0"}}},
            {"op": "vol.list", "args": {"cursor": "tank/a\0"}},
            {"op": "snap.destroy", "args": {"names": ["tank/sv@s1\0x"]}},
            {"op": "snap.destroy", "args": {"name": "tank/sv@s1\0x"}},
            {"op": "snap.create", "args": {"names": ["tank/sv@s2", "tank/sv@s3\0"]}},
            {"op": "pool.destroy", "args": {"name": "tank\0x"}},
            {"op": "pool.create", "args": {"name": "p2", "paths": [os.environ["T"] + "/p2.vdev\0x"]}},
            {"op": "pool.create", "args": {"name": "p2\0", "paths": [os.environ["T"] + "/p2.vdev"]}},
            {"op": "job.list", "args": {"cursor": "\0"}},
            {"op": "hello\0junk"},
            {"op": "vol.set", "args": {"name": "tank/keep", "props": {"compression\0x": "lz4"}}},  # keys too
            {"op": "vol.get", "args": {"name\0": "tank/keep"}}]:
    s.sendall(frame(req)); r = reply(s)
    err(r, "BAD_REQUEST")
    assert "NUL" in r[1]["error"]["message"], r
# a backslash, then "u0000" (no NUL): an ordinary name that does not exist
s.sendall(frame({"op": "vol.get", "args": {"name": "tank/keep\\u0000", "x": "\\\\u0000"}})); err(reply(s), "VOLUME_NOT_FOUND")
s.sendall(frame({"op": "vol.get", "args": {"name": "tank/keep"}})); id, b = reply(s); assert b["ok"], b
assert b["result"]["sources"]["compression"] == "default", b   # none of the refused vol.set calls took effect
s.sendall(frame({"op": "snap.list", "args": {"name": "tank/sv"}})); id, b = reply(s)
assert b["ok"] and [x["name"] for x in b["result"]["snapshots"]] == ["tank/sv@s1"], b
s.sendall(frame({"op": "vol.list"})); id, b = reply(s)
assert b["ok"] and sorted(v["name"] for v in b["result"]["volumes"]) == ["tank/keep", "tank/sv"], b
assert not os.path.exists(os.environ["T"] + "/p2.vdev"), "a pool file was created"
# still serving
s = conn(); s.sendall(frame({"op": "pool.list"})); id, b = reply(s); assert b["ok"] and b["result"]["pools"][0]["name"] == "tank"
print("ok")
PY
$CASK pool list -H -o name | grep -qx tank
stop_caskd
! grep -q "AddressSanitizer\|runtime error" "$T/caskd.log" || fail "sanitizer report in the caskd log"
echo ok
