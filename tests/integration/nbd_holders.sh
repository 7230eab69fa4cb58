#!/usr/bin/env bash
# nbd_holders -- issue 17 item 3: idle NBD clients blocked vol destroy,
# rollback, snap destroy and pool export forever, unseen. client.list /
# client.kill, BUSY errors that name the holders, --force (nbd_holders.py),
# the CLI's `cask client list|kill` and --force; then the handshake and idle
# timeouts (--handshake-timeout, --idle-timeout) cut off silent clients while
# a busy one is kept; and --max-export-connections.
source "$(dirname "$0")/lib.sh"
start_caskd --nbd "unix:$T/nbd.sock"
$CASK pool create tank "$T/tank0.vdev" --size 1G
$CASK vol create tank/v --size 64M
$CASK vol create tank/w --size 64M
PYTHONPATH="$(dirname "$0")" "$PY" "$(dirname "$0")/nbd_holders.py" "$PORT" "$T/nbd.sock" "$SOCK"
grep -q "pool.export tank --force: disconnecting 2 client(s)" "$T/caskd.log" || fail "no log line for the forced disconnect"

# the CLI: client list (table and -j), vol destroy naming the holder, --force
$CASK pool import --path "$T/tank0.vdev" >/dev/null
"$PY" - "$PORT" <<'PY' &
import socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.recv(18); s.sendall(struct.pack(">I", 3))
n = b"tank/w"; p = struct.pack(">I", len(n)) + n + struct.pack(">H", 0)
s.sendall(b"IHAVEOPT" + struct.pack(">II", 7, len(p)) + p)
s.settimeout(60)
try:
    while s.recv(4096):
        pass
except OSError:
    pass
PY
holder=$!
for _ in $(seq 1 1200); do
  $CASK client list -H -o export,state | grep -q "^tank/w	serving" && break
  sleep 0.05
done
$CASK client list | grep -q "tank/w" || fail "cask client list does not show the client"
id=$($CASK client list -j | "$PY" -c 'import json,sys; print([c["id"] for c in json.load(sys.stdin) if c["export"] == "tank/w"][0])')
expect_fail 1 "held by nbd client $id .*--force" $CASK vol destroy tank/w
$CASK vol destroy --force tank/w
wait $holder
$CASK vol get tank/w >/dev/null 2>&1 && fail "vol destroy --force left the volume"
expect_fail 1 "no client 424242 is connected.*CLIENT_NOT_FOUND" $CASK client kill 424242
expect_fail 2 "not a client id" $CASK client kill x
stop_caskd

# timeouts: a client that never chooses an export, and a serving one that goes idle
start_caskd --handshake-timeout 1 --idle-timeout 4
PYTHONPATH="$(dirname "$0")" "$PY" - "$PORT" <<'PY'
import socket, struct, sys, time
from viohelp import check, nbd_raw
port = int(sys.argv[1])
h = socket.create_connection(("127.0.0.1", port))
h.recv(18)                       # the greeting, then silence
idle, _ = nbd_raw(port, "tank/v")
busy, _ = nbd_raw(port, "tank/v")
def eof(s, t):
    s.settimeout(t)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return None
    except ConnectionResetError:
        return True
check(eof(h, 30) is True, "a silent client in the handshake was not cut off")
check(eof(idle, 30) is True, "an idle serving client was not cut off")
# the busy one did a request at least every 0.25 s meanwhile? it did nothing: do it now and go on a while
busy.close()
b2, _ = nbd_raw(port, "tank/v")
# 5 s of requests, longer than the idle timeout; each 0.25 s after the last, far within its 4 s
# (a margin for a loaded machine that does not run this client for a while)
for i in range(20):
    b2.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, i, 0, 512))
    r = b2.recv(16 + 512, socket.MSG_WAITALL)
    check(len(r) == 16 + 512, "a busy client was cut off after %d requests" % i)
    time.sleep(0.25)
print("timeouts: handshake and idle cut off, a busy client kept")
PY
grep -q "chose nothing to serve within 1 s (--handshake-timeout); cut off" "$T/caskd.log" || fail "no handshake timeout log line"
grep -q "idle for 4 s (--idle-timeout); disconnected" "$T/caskd.log" || fail "no idle timeout log line"
stop_caskd

# a per-export cap: the third client of one export is refused with a reason, others are served
start_caskd --max-export-connections 2
$CASK vol create tank/w2 --size 16M
PYTHONPATH="$(dirname "$0")" "$PY" - "$PORT" "$SOCK" <<'PY'
import sys, time
from viohelp import Ctl, check, nbd_raw, nbd_raw_refusal
port, ctl = int(sys.argv[1]), Ctl(sys.argv[2])
a, _ = nbd_raw(port, "tank/v")
b, _ = nbd_raw(port, "tank/v")
why = nbd_raw_refusal(port, "tank/v")
check(why is not None and "has 2 connections, its limit (--max-export-connections)" in why, "third client: %r" % why)
w, _ = nbd_raw(port, "tank/w2")          # another export is not affected
a.close()
for _ in range(6000):
    if len([c for c in ctl.call("client.list")["clients"] if c["export"] == "tank/v"]) < 2:
        break
    time.sleep(0.01)
c, _ = nbd_raw(port, "tank/v")          # room again
print("per-export cap: third client refused with its reason, served once one left")
PY
stop_caskd
echo ok
