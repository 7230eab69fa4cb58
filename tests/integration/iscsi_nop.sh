#!/usr/bin/env bash
# iscsi_nop -- target NOP-In pings (--iscsi-nop-ms, docs/iscsi.md 7.7): an idle session gets a
# NOP-In with a target transfer tag and the reserved ITT; answered, the session lives and is
# pinged again; unanswered, caskd drops it and says why; with --iscsi-nop-ms 0 nothing is sent.
# cask's own initiator (iscsi_proto.py) plays the initiator; the sanitizer caskd.
source "$(dirname "$0")/lib.sh"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
IPORT=$(free_port)
start_caskd --iscsi "127.0.0.1:$IPORT" --iscsi-nop-ms 300 -v
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 16M
cat > "$T/nop.py" <<'PY'
import struct, sys
import iscsi_proto as ip
ip.HOST, ip.PORT, ip.TARGET = "127.0.0.1", int(sys.argv[1]), "iqn.2026-12.io.cask:tank.v"
mode = sys.argv[2]
s = ip.Sess()
s.login()
def ping():
    r, d = s.recv_pdu()  # the socket's 10 s timeout bounds the wait
    assert r[0] & 0x3F == 0x20, "not a NOP-In: 0x%x" % r[0]
    itt, ttt = struct.unpack(">II", r[16:24])
    assert itt == 0xFFFFFFFF and ttt not in (0, 0xFFFFFFFF), (hex(itt), hex(ttt))
    return r
if mode == "off":
    s.s.settimeout(3)
    try:
        r, d = s.recv_pdu()
        sys.exit("caskd sent opcode 0x%x with pings off" % r[0])
    except ip.Dropped:  # the timeout: nothing came
        pass
    print("no ping")
    sys.exit(0)
for n in range(2):
    r = ping()
    o = bytearray(48)  # the answer: NOP-Out, immediate, ITT reserved, the ping's TTT and LUN
    o[0] = 0x40 | 0x00
    o[1] = 0x80
    o[8:16] = r[8:16]
    o[16:20] = b"\xff\xff\xff\xff"
    o[20:24] = r[20:24]
    struct.pack_into(">I", o, 24, s.cmdsn)
    s.send_pdu(o)
    print("ping %d answered" % (n + 1))
st, _ = s.cmd(bytes([0x00] * 6), 0)  # TEST UNIT READY: the session still works
assert st in (0, 2), st
ping()
print("ping 3 not answered")
try:
    while True:
        s.recv_pdu()
except ip.Dropped:
    print("dropped")
PY
out=$(PYTHONPATH="$(dirname "$0")" "$PY" "$T/nop.py" "$IPORT" on)
echo "$out"
[ "$(echo "$out" | tail -n 1)" = dropped ] || fail "an unanswered ping did not end the session"
grep -q "no answer to a NOP-In ping in 300 ms" "$T/caskd.log" || fail "the drop was not logged"
stop_caskd
PORT= start_caskd --iscsi "127.0.0.1:$IPORT" --iscsi-nop-ms 0
PYTHONPATH="$(dirname "$0")" "$PY" "$T/nop.py" "$IPORT" off | grep -qx "no ping" || fail "a ping with --iscsi-nop-ms 0"
stop_caskd
! grep -q "AddressSanitizer\|runtime error\|LeakSanitizer" "$T/caskd.log" || fail "sanitizer report in the caskd log"
echo ok
