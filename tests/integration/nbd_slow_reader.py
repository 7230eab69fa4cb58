"""nbd_slow_reader -- a client that sends requests and never reads the
replies cannot grow caskd's memory: caskd stops reading it once its queue is
full (RSS stays bounded although the client asked for 1 TiB of reads), the
other clients are served meanwhile, and after --stall-timeout the silent
client is cut off.
Usage: nbd_slow_reader.py PORT CASKD_PID LOG"""
import select
import socket
import struct
import sys
import time

import nbd

from viohelp import check, fail, nbd_raw, rss_kib

port, pid, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
uri = "nbd://127.0.0.1:%d/tank/v" % port
MIB = 1 << 20

h = nbd.NBD()
h.connect_uri(uri)
h.pwrite(b"\x5a" * MIB, 0)
for i in range(8):
    h.pread(MIB, 0)  # warm the read path, buffers and cache
rss0 = rss_kib(pid)

s, size = nbd_raw(port, "tank/v")
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
s.setblocking(False)
TOTAL = 1 << 20  # a million reads of 1 MiB (28 MB of requests, more than any socket buffers), never read
req = b"".join(struct.pack(">IHHQQI", 0x25609513, 0, 0, i + 1, (i % 32) * MIB, MIB) for i in range(TOTAL))
sent = 0
stuck = 0
while sent < len(req) and stuck < 10:
    try:
        k = s.send(req[sent:])
        sent += k
        stuck = 0
    except BlockingIOError:
        stuck += 1  # caskd stopped reading this client: throttled
        select.select([], [s], [], 0.1)
nreq = sent // 28
check(nreq < TOTAL, "caskd kept reading a client that reads no replies (%d requests taken)" % nreq)
rss1 = rss_kib(pid)
grow = rss1 - rss0
check(grow < 200 * 1024, "caskd's RSS grew by %d KiB for a client that reads nothing" % grow)

# others are served meanwhile
for i in range(16):
    h.pwrite(bytes([i]) * 4096, (40 + i) * 4096)
    check(h.pread(4096, (40 + i) * 4096) == bytes([i]) * 4096, "another client is served")
h.flush()

# the silent client is cut off after the stall timeout (a bound on tries, not a timing check)
for _ in range(600):
    with open(log) as f:
        if "has not read its replies; cut off" in f.read():
            break
    time.sleep(0.05)
else:
    fail("the silent client was never cut off")
s.setblocking(True)
got = 0
try:
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        got += len(b)
except ConnectionResetError:
    pass
check(got < nreq * (MIB + 16), "the cut-off client did not get every reply")
check(h.pread(4096, 40 * 4096) == b"\0" * 4096, "still served after the cut-off")
h.shutdown()
print("ok: %d requests taken of %d, RSS +%d KiB, cut off; others served" % (nreq, TOTAL, grow))
