#!/usr/bin/env bash
# ilog_damage -- issue 17 item 9's reproduction: data B written and
# FLUSH-acknowledged, kill -9, one bit flipped in the intent log block: the
# restart read the old data with the pool ONLINE, 0 errors and nothing logged.
# Now the damage is reported: caskd logs it, pool status says it (status
# line, checksum error, log_damage in -j), until `cask pool clear`.
source "$(dirname "$0")/lib.sh"
start_caskd
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 16M
PYTHONPATH="$(dirname "$0")" "$PY" - "$PORT" <<'PY'
import struct, sys
from viohelp import check, nbd_raw, recvn
s, _ = nbd_raw(int(sys.argv[1]), "tank/v")
def req(t, cookie, off, data=b"", length=None):
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, t, cookie, off, len(data) if length is None else length) + data)
    magic, err, c = struct.unpack(">IIQ", recvn(s, 16))
    check(magic == 0x67446698 and err == 0 and c == cookie, "reply to %d" % t)
req(1, 1, 0, b"A" * 4096); req(3, 2, 0)          # the first FLUSH may commit a txg (the log warms up)
req(1, 3, 8192, b"B" * 4096); req(3, 4, 0)       # this one is served by the log
PY
st=$($CASK pool status -j tank)
blocks=$(echo "$st" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["intent_log"]["blocks"])')
[ "$blocks" -ge 1 ] || fail "the FLUSH did not use the intent log: $st"
kill -KILL "$CASKD_PID"; wait "$CASKD_PID" 2>/dev/null || true; CASKD_PID=
# the newest log block, from cask-debug's view of the chain
dbg=$("$CASK_BUILD/cask-debug" log "$T/tank0.vdev")
sector=$(echo "$dbg" | sed -n 's/^intent log: vdev 0, [0-9]* KiB at sector \([0-9]*\);.*/\1/p')
off=$(echo "$dbg" | sed -n 's/^block seq [0-9]* at +\([0-9]*\):.*/\1/p' | tail -n 1)
[ -n "$sector" ] && [ -n "$off" ] || fail "cannot find the log block: $dbg"
# sectors count from the end of the front label region (512 KiB, docs/on-disk-format.md)
"$PY" - "$T/tank0.vdev" $((524288 + sector * 4096 + off + 300)) <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x10]))
PY
rc=0; out=$("$CASK_BUILD/cask-debug" log "$T/tank0.vdev") || rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "^damaged: block seq [0-9]* has the chain's identity but fails its checksum" ||
  fail "cask-debug log does not report the damaged block (exit $rc): $out"
start_caskd
grep -q "pool tank: the intent log's last block ([0-9]*) fails its checksum and was not replayed" "$T/caskd.log" ||
  fail "caskd did not log the damaged log block"
$CASK pool status tank | grep -q "^status: the intent log's last block" || fail "pool status does not show the damage"
$CASK pool status tank | grep -q "^errors: 1 checksum" || fail "the damage is not a checksum error"
$CASK pool status -j tank | "$PY" -c '
import json, sys
j = json.load(sys.stdin)
assert j["state"] == "ONLINE" and "fails its checksum" in j["error"], j' || fail "pool status -j"
"$PY" - "$SOCK" <<'PY' || fail "pool.status has no log_damage object"
import sys
sys.path.insert(0, "tests/integration")
from viohelp import Ctl
d = Ctl(sys.argv[1]).call("pool.status", name="tank")["log_damage"]
assert d["damaged_block"] > 0 and d["lost_blocks"] == 0 and d["certain"] is False, d
PY
$CASK pool clear tank
$CASK pool status tank | grep -q "^status:" && fail "pool clear did not acknowledge the damage"
$CASK pool status tank | grep -q "^errors: 0 checksum" || fail "pool clear left the checksum error"
stop_caskd
echo ok
