#!/usr/bin/env bash
# iscsi_reinstate -- session reinstatement (RFC 7143 6.3.5, docs/iscsi.md 4.5): a login with the
# initiator name and ISID of a live session ends that session, and its final Login Response
# waits until the old session's tasks are gone: here the old session's write is held in the
# volume IO stack (test.vio_fault stall), the new login is not answered until it is released,
# then completes, the old connection is closed and the new session serves IO. Sanitizer caskd.
source "$(dirname "$0")/lib.sh"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
IPORT=$(free_port)
start_caskd --iscsi "127.0.0.1:$IPORT" --test-ops -v
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 16M
cat > "$T/reinstate.py" <<'PY'
import struct, sys, threading
import iscsi_proto as ip
from viohelp import Ctl
ip.HOST, ip.PORT, ip.TARGET = "127.0.0.1", int(sys.argv[1]), "iqn.2026-12.io.cask:tank.v"
ctl = Ctl(sys.argv[2])
ISID = bytes.fromhex("800000000b02")
old = ip.Sess(initiator="iqn.2026-12.io.cask.test:node-b", isid=ISID)
old.login()
ctl.call("test.vio_fault", name="tank/v", action="stall", ops=["write"])
bhs = bytearray(48)
bhs[0] = 0x01; bhs[1] = 0x80 | 0x20 | 1
struct.pack_into(">I", bhs, 16, 7); struct.pack_into(">I", bhs, 20, 512); struct.pack_into(">I", bhs, 24, old.cmdsn)
bhs[32:42] = bytes([0x2A, 0, 0, 0, 0, 0x20, 0, 0, 1, 0])
old.send_pdu(bhs, b"\x44" * 512)  # immediate data
while ctl.call("test.vio_fault", name="tank/v", action="status")["held"] == 0:
    pass
new = ip.Sess(initiator="iqn.2026-12.io.cask.test:node-b", isid=ISID)
res = {}
def login():
    try:
        res["kv"] = new.login()
    except Exception as e:  # noqa: BLE001 - reported below
        res["err"] = repr(e)
th = threading.Thread(target=login)
th.start()
th.join(1.5)
assert th.is_alive(), "the reinstating login was answered while the old session's write was held: %r" % res
print("login held while the old session drains")
ctl.call("test.vio_fault", name="tank/v", action="release")
ctl.call("test.vio_fault", name="tank/v", action="clear")
th.join(10)
assert not th.is_alive() and "kv" in res, "the reinstating login did not complete: %r" % res
print("login completed after the release")
try:
    while True:
        old.recv_pdu()
except ip.Dropped:
    print("old connection closed")
for _ in range(3):
    st, got = new.cmd(bytes([0x28, 0, 0, 0, 0, 0x20, 0, 0, 1, 0]), 512, read=True)
    if st == 0:
        break
assert st == 0 and got == b"\x44" * 512, (st, got[:8])
print("new session reads the write the old one made")
PY
PYTHONPATH="$(dirname "$0")" "$PY" "$T/reinstate.py" "$IPORT" "$SOCK"
grep -q "session of iqn.2026-12.io.cask.test:node-b reinstated" "$T/caskd.log" || fail "reinstatement not logged"
grep -q "the reinstated session drained; login of" "$T/caskd.log" || fail "drain not logged"
stop_caskd
! grep -q "AddressSanitizer\|runtime error\|LeakSanitizer" "$T/caskd.log" || fail "sanitizer report in the caskd log"
echo ok
