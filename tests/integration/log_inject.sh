#!/usr/bin/env bash
# log_inject -- regression for issue 17 item 8: an NBD export name with a
# newline and an ANSI escape wrote a forged "pool ... SUSPENDED" line and a
# raw ESC byte into caskd's log.  Hostile names go in over raw NBD
# (OPT_INFO, OPT_GO, the old OPT_EXPORT_NAME) and over the control socket;
# the log (caskd -v, so option refusals are logged too) must hold no line
# starting with the forged text and no raw ESC, and must show the escaped
# form of each name.
source "$(dirname "$0")/lib.sh"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
start_caskd -v
$CASK pool create tank "$T/t.vdev" --size 64M
$CASK vol create tank/v --size 1M
SOCK="$SOCK" PORT="$PORT" "$PY" - <<'PY'
import json, os, socket, struct
BAD = b"a\nFAKE pool tank SUSPENDED\x1b[31m"
IHAVEOPT, REPLY_MAGIC = 0x49484156454F5054, 0x3e889045565a9
def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            return None
        b += c
    return b
def nbd_conn():
    s = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])), timeout=10)
    hello = recvn(s, 18)
    assert hello[:16] == b"NBDMAGIC" + struct.pack(">Q", IHAVEOPT), hello
    s.sendall(struct.pack(">I", 3))           # FIXED_NEWSTYLE | NO_ZEROES
    return s
def option(s, opt, data):
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)
def replies(s, opt):
    """Option replies up to the final one; the types seen."""
    types = []
    while True:
        h = recvn(s, 20)
        assert h is not None, "caskd closed during option %d" % opt
        magic, o, typ, ln = struct.unpack(">QIII", h)
        assert magic == REPLY_MAGIC and o == opt, h
        recvn(s, ln)
        types.append(typ)
        if typ == 1 or typ & 0x80000000:      # ACK or an error: the final reply
            return types
s = nbd_conn()
for opt, name in [(6, BAD), (7, BAD), (6, b"tank/" + BAD), (7, b"tank/v\n" + BAD)]:  # INFO, GO
    option(s, opt, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))
    assert replies(s, opt)[-1] & 0x80000000, "hostile name %r was served" % name
option(s, 1, BAD)                              # EXPORT_NAME: no error reply, caskd closes
assert recvn(s, 1) is None, "EXPORT_NAME of a hostile name was served"
s.close()
# the control socket: names and a path (each fails, and the failure is logged with the name)
c = socket.socket(socket.AF_UNIX); c.connect(os.environ["SOCK"]); c.settimeout(10)
def call(req, rid=1):
    body = json.dumps(req).encode()
    c.sendall(struct.pack("<IHHII", 0x4b534143, 1, 1, rid, len(body)) + body)
    h = recvn(c, 16); n = struct.unpack("<IHHII", h)[4]
    return json.loads(recvn(c, n))
bad = BAD.decode()
for req in [{"op": "vol.get", "args": {"name": "tank/" + bad}},
            {"op": "vol.destroy", "args": {"name": "nope" + bad + "/v"}},
            {"op": "pool.destroy", "args": {"name": bad}},
            {"op": "pool.import", "args": {"paths": ["/nonexistent/" + bad]}},
            {"op": "vol.set", "args": {"name": "tank/v", "prop": bad, "value": "x"}},
            {"op": "hello" + bad}]:
    r = call(req)
    assert r["ok"] is False, (req, r)
print("ok")
PY
stop_caskd
LOG="$T/caskd.log"
! grep -q "AddressSanitizer\|runtime error" "$LOG" || fail "sanitizer report in the caskd log"
! grep -n '^FAKE' "$LOG" || fail "a client's name forged a log line"
! grep -qn "$(printf '\033')" "$LOG" || fail "a raw ESC byte in the caskd log"
ESC='a\\nFAKE pool tank SUSPENDED\\x1b\[31m'
nbd_lines=$(grep -c "nbd .*$ESC" "$LOG" || true)
ctl_lines=$(grep -c "ctl uid .*$ESC" "$LOG" || true)
[ "$nbd_lines" -ge 5 ] || fail "expected the 5 NBD names escaped in the log, found $nbd_lines"
[ "$ctl_lines" -ge 5 ] || fail "expected the 5 control failures with the escaped name, found $ctl_lines"
echo "ok (escaped: $nbd_lines nbd lines, $ctl_lines ctl lines)"
