#!/usr/bin/env bash
# ilog_damage -- issue 17 item 9's reproduction: data B written and
# FLUSH-acknowledged, kill -9, one bit flipped in the intent log block: the
# restart read the old data with the pool ONLINE, 0 errors and nothing logged.
# Now the damage is reported: caskd logs it, pool status says it (status
# line, checksum error, log_damage in -j), until `cask pool clear`; and the
# volume whose records were lost, tank/v, is marked (property log_damaged,
# the txg range and count), while tank/w, whose flushed write sits in an
# intact earlier block, is not.
source "$(dirname "$0")/lib.sh"
start_caskd
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 16M
$CASK vol create tank/w --size 16M
PYTHONPATH="$(dirname "$0")" "$PY" - "$PORT" <<'PY'
import struct, sys
from viohelp import check, nbd_raw, recvn
s, _ = nbd_raw(int(sys.argv[1]), "tank/v")
w, _ = nbd_raw(int(sys.argv[1]), "tank/w")
def req(s, t, cookie, off, data=b"", length=None):
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, t, cookie, off, len(data) if length is None else length) + data)
    magic, err, c = struct.unpack(">IIQ", recvn(s, 16))
    check(magic == 0x67446698 and err == 0 and c == cookie, "reply to %d" % t)
req(s, 1, 1, 0, b"A" * 4096); req(s, 3, 2, 0)    # the first FLUSH may commit a txg (the log warms up)
req(w, 1, 1, 0, b"C" * 4096); req(w, 3, 2, 0)    # tank/w's write, in an earlier log block
req(s, 1, 3, 8192, b"B" * 4096); req(s, 3, 4, 0) # this one is served by the log: the block damaged below
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
c = Ctl(sys.argv[1])
d = c.call("pool.status", name="tank")["log_damage"]
assert d["damaged_block"] > 0 and d["lost_blocks"] == 0 and d["certain"] is False and d["volumes"] == 1, d
assert c.call("vol.get", name="tank/v")["log_damaged"].startswith("txg "), c.call("vol.get", name="tank/v")
assert c.call("vol.get", name="tank/w")["log_damaged"] == "", c.call("vol.get", name="tank/w")
PY
# the mark: on exactly the volume whose acknowledged write was lost
mark=$($CASK vol get -H -o value log_damaged tank/v)
echo "$mark" | grep -Eq "^txg [0-9]+-[0-9]+, 1 record$" || fail "tank/v is not marked log_damaged: '$mark'"
[ "$($CASK vol get -H -o value log_damaged tank/w)" = "-" ] || fail "tank/w is marked although its log block is intact"
$CASK vol list -H -o name,log_damaged tank | grep -qx "tank/v	$mark" || fail "vol list does not show the mark"
$CASK vol list -H -o name,log_damaged tank | grep -qx "tank/w	-" || fail "vol list marks tank/w"
$CASK vol get all tank/v | grep -q "log_damaged *txg" || fail "vol get all lacks log_damaged"
$CASK pool status tank | grep -q "1 volume is marked (property log_damaged)" || fail "pool status does not count the volume"
grep -q "pool tank: volume v: log_damaged=txg" "$T/caskd.log" || fail "caskd did not log the marked volume"
grep -q "volume w: log_damaged" "$T/caskd.log" && fail "caskd logged tank/w as damaged"
# the data: tank/w's intact block was replayed, tank/v's damaged one was not
PYTHONPATH="$(dirname "$0")" "$PY" - "$PORT" <<'PY'
import struct, sys
from viohelp import check, nbd_raw, recvn
for vol, off, want in (("tank/w", 0, b"C"), ("tank/v", 0, b"A"), ("tank/v", 8192, b"\0")):
    s, _ = nbd_raw(int(sys.argv[1]), vol)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 1, off, 4096))
    magic, err, c = struct.unpack(">IIQ", recvn(s, 16))
    check(err == 0 and recvn(s, 4096) == want * 4096, "%s at %d" % (vol, off))
    s.close()
PY
$CASK pool clear tank
[ "$($CASK vol get -H -o value log_damaged tank/v)" = "-" ] || fail "pool clear left tank/v marked"
"$PY" - "$SOCK" <<'PY' || fail "vol.get still reports log_damaged after pool.clear"
import sys
sys.path.insert(0, "tests/integration")
from viohelp import Ctl
c = Ctl(sys.argv[1])
assert c.call("vol.get", name="tank/v")["log_damaged"] == "" and "log_damage" not in c.call("pool.status", name="tank")
PY
$CASK pool status tank | grep -q "^status:" && fail "pool clear did not acknowledge the damage"
$CASK pool status tank | grep -q "^errors: 0 checksum" || fail "pool clear left the checksum error"
stop_caskd
echo ok
