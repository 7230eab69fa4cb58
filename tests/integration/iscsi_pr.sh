#!/usr/bin/env bash
# iscsi_pr -- persistent reservation service actions libiscsi 1.19 has no test for, through
# cask's own initiator (iscsi_pr.py): REGISTER AND MOVE (the holder hands its reservation and a
# new key to another I_T nexus named by a TransportID, keeping or dropping its own
# registration; refused from a non-holder, to itself, with key 0, to another target port, for
# an all-registrants type), on the sanitizer caskd.
source "$(dirname "$0")/lib.sh"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
IPORT=$(free_port)
TGT=iqn.2026-12.io.cask:tank.v
A="iqn.2026-12.io.cask.test:node-a 800000000a01"; PA="iqn.2026-12.io.cask.test:node-a,i,0x800000000a01"
B="iqn.2026-12.io.cask.test:node-b 800000000b02"; PB="iqn.2026-12.io.cask.test:node-b,i,0x800000000b02"
C="iqn.2026-12.io.cask.test:node-c 800000000c03"; PC="iqn.2026-12.io.cask.test:node-c,i,0x800000000c03"
pr() { local who=$1 isid=$2; shift 2; PYTHONPATH="$(dirname "$0")" "$PY" "$(dirname "$0")/iscsi_pr.py" 127.0.0.1 "$IPORT" "$TGT" "$who" "$isid" "$@"; }
want() { local exp=$1; shift; local got; got=$(pr "$@" | tr '\n' ' ' | sed 's/ $//'); [ "$got" = "$exp" ] || fail "'$*': got '$got', want '$exp'"; }
start_caskd --iscsi "127.0.0.1:$IPORT" -v
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 16M

# A holds WRITE EXCLUSIVE; B is registered, C never logged in
want "register 0 reserve 0" $A register a1 reserve a1 1
want "register 0" $B register b2
# refused: from a registrant that does not hold it, with key 0, to itself, to another port
want "move 24" $B move b2 b9 1 "$PC"
want "move 2 sense 5/26/00" $A move a1 0 1 "$PC"
want "move 2 sense 5/26/00" $A move a1 a9 1 "$PA"
want "move 2 sense 5/26/00" $A move a1 c3 1 "garbage-not-a-port"
want "res a1 1" $A res
# A moves it to C (not logged in yet) under key c3, keeping its own registration
want "move 0" $A move a1 c3 1 "$PC"
want "res c3 1" $B res
keys=$(pr $B keys); echo "$keys" | grep -q " a1" && echo "$keys" | grep -q " b2" && echo "$keys" | grep -q " c3" ||
  fail "keys after the move: $keys"
want "write 0" $C write
want "write 24" $A write
# C moves it on to B, giving up its registration (UNREG); B's key becomes bb
want "move 0" $C move c3 bb 1 "$PB" unreg
want "res bb 1" $A res
keys=$(pr $A keys); echo "$keys" | grep -q " c3" && fail "UNREG kept the source's registration: $keys"
echo "$keys" | grep -q " bb" || fail "B's new key missing: $keys"
want "write 0" $B write
want "write 24" $C write
# an all-registrants reservation cannot be moved
want "clear 0" $B clear bb
want "register 0 reserve 0" $A register a1 reserve a1 7
want "move 24" $A move a1 c4 7 "$PC"
want "clear 0" $A clear a1
stop_caskd

# PREEMPT AND ABORT: B's write is held in the volume IO stack (test.vio_fault stall); A preempts
# B's registration and aborts its tasks: A's command completes only once B's write is gone, B
# gets no response for it, and B's next command learns of the preemption (2A/05)
PORT= start_caskd --iscsi "127.0.0.1:$IPORT" --test-ops -v
cat > "$T/pa.py" <<'PY'
import socket, struct, sys
import iscsi_proto as ip
from viohelp import Ctl
ip.HOST, ip.PORT, ip.TARGET = "127.0.0.1", int(sys.argv[1]), "iqn.2026-12.io.cask:tank.v"
ctl = Ctl(sys.argv[2])
a = ip.Sess(initiator="iqn.2026-12.io.cask.test:node-a", isid=bytes.fromhex("800000000a01")); a.login()
b = ip.Sess(initiator="iqn.2026-12.io.cask.test:node-b", isid=bytes.fromhex("800000000b02")); b.login()
def send_cmd(s, cdb, edtl, data=None):
    bhs = bytearray(48)
    bhs[0] = 0x01
    bhs[1] = 0x80 | (0x20 if data is not None else 0) | 1
    struct.pack_into(">I", bhs, 16, s.itt)
    struct.pack_into(">I", bhs, 20, edtl)
    struct.pack_into(">I", bhs, 24, s.cmdsn)
    bhs[32:32 + len(cdb)] = cdb
    s.itt += 1
    s.cmdsn += 1
    s.send_pdu(bhs, data or b"")  # immediate data (ImmediateData=Yes)
def prout(s, sa, key, sakey=0, typ=0):
    cdb = bytes([0x5F, sa, typ, 0, 0]) + struct.pack(">I", 24) + b"\0"
    par = struct.pack(">QQ", key, sakey) + b"\0" * 8
    return cdb, par
def status(s):
    while True:
        r, d = s.recv_pdu()
        if r[0] & 0x3F == 0x21:
            return r[3], d
        assert r[0] & 0x3F != 0x31, "unexpected R2T"
for s, k in ((a, 0xA1), (b, 0xB2)):
    for _ in range(3):  # the power-on unit attention, once
        st, _ = s.cmd(*prout(s, 6, 0, k)[:1], 24, prout(s, 6, 0, k)[1])
        if st == 0:
            break
    assert st == 0, "register %x: %d" % (k, st)
st, _ = a.cmd(prout(a, 1, 0xA1, 0, 1)[0], 24, prout(a, 1, 0xA1, 0, 1)[1])
assert st == 0, "reserve: %d" % st
st, _ = b.cmd(bytes([0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0]), 512, b"\x11" * 512)
assert st == 0x18, "B wrote through A's reservation: %d" % st
# B becomes the holder (WRITE EXCLUSIVE) so that its write runs, then it is held in vio
st, _ = b.cmd(prout(b, 4, 0xB2, 0xA1, 1)[0], 24, prout(b, 4, 0xB2, 0xA1, 1)[1])
assert st == 0, "B preempts A: %d" % st
st, _ = a.cmd(prout(a, 6, 0, 0xA3)[0], 24, prout(a, 6, 0, 0xA3)[1])
for _ in range(3):
    if st == 0:
        break
    st, _ = a.cmd(prout(a, 6, 0, 0xA3)[0], 24, prout(a, 6, 0, 0xA3)[1])
assert st == 0, "A registers again: %d" % st
ctl.call("test.vio_fault", name="tank/v", action="stall", ops=["write"])
send_cmd(b, bytes([0x2A, 0, 0, 0, 0, 0x10, 0, 0, 1, 0]), 512, b"\x22" * 512)
while ctl.call("test.vio_fault", name="tank/v", action="status")["held"] == 0:
    pass
cdb, par = prout(a, 5, 0xA3, 0xB2, 1)
bhs = bytearray(48); bhs[0] = 0x01; bhs[1] = 0x80 | 0x20 | 1
struct.pack_into(">I", bhs, 16, 900); struct.pack_into(">I", bhs, 20, 24); struct.pack_into(">I", bhs, 24, a.cmdsn)
a.cmdsn += 1
bhs[32:42] = cdb
a.send_pdu(bhs, par)
a.s.settimeout(1.5)
try:
    r, d = a.recv_pdu()
    sys.exit("PREEMPT AND ABORT answered (opcode 0x%x) while B's write was held" % r[0])
except ip.Dropped:
    print("PREEMPT AND ABORT waits for the preempted write")
a.s.settimeout(10)
ctl.call("test.vio_fault", name="tank/v", action="release")
ctl.call("test.vio_fault", name="tank/v", action="clear")
st, _ = status(a)
assert st == 0, "PREEMPT AND ABORT: %d" % st
print("PREEMPT AND ABORT done after the release")
b.s.settimeout(1.5)
try:
    r, d = b.recv_pdu()
    sys.exit("B got opcode 0x%x status %d for its aborted write" % (r[0], r[3]))
except ip.Dropped:
    print("no response for the aborted write")
b.s.settimeout(10)
st, sense = b.cmd(bytes(6), 0)
assert st == 2 and sense[2 + 12] == 0x2A and sense[2 + 13] == 0x05, (st, sense[:20])
print("B: unit attention 2A/05")
st, _ = b.cmd(bytes([0x2A, 0, 0, 0, 0, 0, 0, 0, 1, 0]), 512, b"\x33" * 512)
assert st == 0x18, "B wrote after it was preempted: %d" % st
print("B: reservation conflict")
PY
out=$(PYTHONPATH="$(dirname "$0")" "$PY" "$T/pa.py" "$IPORT" "$SOCK") || { echo "$out"; fail "PREEMPT AND ABORT"; }
echo "$out"
stop_caskd
! grep -q "AddressSanitizer\|runtime error\|LeakSanitizer" "$T/caskd.log" || fail "sanitizer report in the caskd log"
echo ok
