#!/usr/bin/env bash
# iscsi_stall -- never a silent hang (docs/iscsi.md 9.3): behind a write held in the volume IO
# stack (test.vio_fault stall) for longer than --iscsi-stall-ms, new medium-access commands of
# the session (READ, WRITE, TEST UNIT READY ...) are answered TASK SET FULL at once (never
# started, so retryable), INQUIRY and a NOP-Out are still answered, and after the release the held write completes GOOD and new writes run again.
source "$(dirname "$0")/lib.sh"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
IPORT=$(free_port)
start_caskd --iscsi "127.0.0.1:$IPORT" --iscsi-stall-ms 300 --test-ops -v
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 16M
cat > "$T/stall.py" <<'PY'
import struct, sys, time
import iscsi_proto as ip
from viohelp import Ctl
ip.HOST, ip.PORT, ip.TARGET = "127.0.0.1", int(sys.argv[1]), "iqn.2026-12.io.cask:tank.v"
ctl = Ctl(sys.argv[2])
s = ip.Sess()
s.login()
for _ in range(3):  # the power-on unit attention
    st, _ = s.cmd(bytes(6), 0)
    if st == 0:
        break
def send_write(itt, lba, byte):
    bhs = bytearray(48)
    bhs[0] = 0x01; bhs[1] = 0x80 | 0x20 | 1
    struct.pack_into(">I", bhs, 16, itt); struct.pack_into(">I", bhs, 20, 512); struct.pack_into(">I", bhs, 24, s.cmdsn)
    s.cmdsn += 1
    bhs[32:42] = bytes([0x2A, 0, 0, 0, 0, lba, 0, 0, 1, 0])
    s.send_pdu(bhs, bytes([byte]) * 512)
def response():
    r, d = s.recv_pdu()
    assert r[0] & 0x3F == 0x21, "opcode 0x%x" % r[0]
    return struct.unpack(">I", r[16:20])[0], r[3]
ctl.call("test.vio_fault", name="tank/v", action="stall", ops=["write"])
send_write(100, 1, 0x55)
while ctl.call("test.vio_fault", name="tank/v", action="status")["held"] == 0:
    pass
time.sleep(0.6)  # past --iscsi-stall-ms (300): the held write is now a stall
send_write(101, 2, 0x66)
itt, st = response()
assert (itt, st) == (101, 0x28), "behind the stall: ITT %d status 0x%x, want TASK SET FULL" % (itt, st)
print("TASK SET FULL behind the stall")
st, _ = s.cmd(bytes([0x28, 0, 0, 0, 0, 3, 0, 0, 1, 0]), 512, read=True)
assert st == 0x28, "a read behind the stall: 0x%x" % st
st, got = s.cmd(bytes([0x12, 0, 0, 0, 96, 0]), 96, read=True)  # INQUIRY needs no medium: answered
assert st == 0 and got[8:12] == b"CASK", "INQUIRY behind the stall: 0x%x" % st
o = bytearray(48); o[0] = 0x40; o[1] = 0x80
struct.pack_into(">I", o, 16, 0x5151); struct.pack_into(">I", o, 20, 0xFFFFFFFF); struct.pack_into(">I", o, 24, s.cmdsn)
s.send_pdu(o)
r, _ = s.recv_pdu()
assert r[0] & 0x3F == 0x20 and struct.unpack(">I", r[16:20])[0] == 0x5151, "NOP-Out not answered"
print("NOP-Out answered during the stall")
ctl.call("test.vio_fault", name="tank/v", action="release")
ctl.call("test.vio_fault", name="tank/v", action="clear")
itt, st = response()
assert (itt, st) == (100, 0), "the held write: ITT %d status 0x%x" % (itt, st)
print("the held write completed")
st, _ = s.cmd(bytes([0x2A, 0, 0, 0, 0, 2, 0, 0, 1, 0]), 512, b"\x77" * 512)
assert st == 0, "a write after the stall: 0x%x" % st
st, got = s.cmd(bytes([0x28, 0, 0, 0, 0, 1, 0, 0, 2, 0]), 1024, read=True)
assert st == 0 and got == b"\x55" * 512 + b"\x77" * 512, "read back"
print("writes run again")
PY
PYTHONPATH="$(dirname "$0")" "$PY" "$T/stall.py" "$IPORT" "$SOCK"
grep -q "new ones get TASK SET FULL until it completes" "$T/caskd.log" || fail "the stall was not logged"
stop_caskd
! grep -q "AddressSanitizer\|runtime error\|LeakSanitizer" "$T/caskd.log" || fail "sanitizer report in the caskd log"
echo ok
