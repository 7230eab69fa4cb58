#!/usr/bin/env bash
# nbd_fd_limit -- issue 17 item 3's reproduction: under `ulimit -n 256`, 400
# NBD clients made new clients time out while caskd logged 169 "Too many open
# files" lines in 15 s. Now connections past the descriptor reserve are
# closed at once (a client sees EOF, never a hang), the refusals are logged
# in a line or two, the control socket keeps answering (and can still import
# a pool), and once the flood leaves new clients are served again.
source "$(dirname "$0")/lib.sh"
PORT=$(free_port)
NBD="nbd://127.0.0.1:$PORT"
# caskd alone gets the low limit (soft and hard: it cannot raise it back)
(ulimit -n 256; exec "$CASKD" --state "$T/state" --socket "$SOCK" --nbd "127.0.0.1:$PORT" >>"$T/caskd.log" 2>&1) &
CASKD_PID=$!
wait_caskd caskd "$CASKD_PID" "$SOCK" "$T/caskd.log"
[ "$(awk '/^Max open files/ {print $4}' /proc/$CASKD_PID/limits)" = 256 ] || fail "caskd's limit is not 256"
grep -Eq "ulimit -n 256 leaves room for about 1[0-9]{2} connections, not --max-connections 1024" "$T/caskd.log" || fail "no start-up line about the descriptor limit"
$CASK pool create tank "$T/tank0.vdev" --size 1G
$CASK vol create tank/v --size 16M
$CASK pool create spare "$T/spare0.vdev" --size 256M
$CASK pool export spare

PYTHONPATH="$(dirname "$0")" "$PY" - "$PORT" "$SOCK" "$T/spare0.vdev" "$CASKD_PID" <<'PY'
import os, socket, struct, subprocess, sys, time
from viohelp import Ctl, check, nbd_raw
port, sock, spare, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
served, refused = [], 0
for i in range(400):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(30)
    try:
        g = s.recv(18, socket.MSG_WAITALL)
    except ConnectionResetError:
        g = b""
    if len(g) == 18:
        served.append(s)
    else:
        check(g == b"", "a refused client got %r" % g)
        refused += 1
        s.close()
check(refused > 0 and len(served) + refused == 400, "%d served, %d refused" % (len(served), refused))
check(len(served) < 256, "more clients than descriptors: %d" % len(served))
# every connection slot that descriptors allow is taken: the control socket still works, a pool still imports
ctl = Ctl(sock)
check(len(ctl.call("client.list")["clients"]) == len(served), "client.list while descriptors are short")
ctl.call("pool.import", paths=[spare])
ctl.call("vol.create", name="spare/x", size=1 << 20)
check(os.path.exists("/proc/%d" % pid), "caskd died")
# a new NBD client is closed at once, not left to time out
n = socket.create_connection(("127.0.0.1", port))
n.settimeout(30)
try:
    check(n.recv(18) == b"", "a client past the reserve was served")
except ConnectionResetError:
    pass
n.close()
for s in served:
    s.close()
# the flood is gone: a new client is served again
for _ in range(1200):
    if len(ctl.call("client.list")["clients"]) == 0:
        break
    time.sleep(0.05)
s, size = nbd_raw(port, "tank/v")
check(size == 16 << 20, "a client after the flood was not served")
s.close()
print("fd limit: %d served, %d refused at once; control socket and pool import kept working" % (len(served), refused))
PY
lines=$(grep -c "refused a connection: descriptor" "$T/caskd.log" || true)
[ "$lines" -ge 1 ] && [ "$lines" -le 3 ] || fail "$lines log lines for the refusals (want 1 to 3: rate-limited)"
storm=$(grep -c "Too many open files" "$T/caskd.log" || true)
[ "$storm" -le 3 ] || fail "$storm 'Too many open files' lines"
stop_caskd
echo ok
