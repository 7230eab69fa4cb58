"""vio_layers -- the volume IO layer's statistics and fault layers, seen by
a real NBD client (python3-libnbd) against a real caskd --test-ops:
  * the statistics layer counts exactly what the client did (reads,
    writes, flushes, trims, zeroes, cache, and their bytes);
  * the fault layer fails exactly the Nth write: the client sees EIO on
    that request only, and its data is not written;
  * through a layer that holds requests until released, 32 requests of one
    connection are in flight at once (counted in the layer, not timed);
  * without --test-ops the fault operation is refused.
Usage: vio_layers.py PORT CTL_SOCKET CASKD_PID"""
import errno
import sys
import time

import nbd

from viohelp import Ctl, check, fail

port, sock, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctl = Ctl(sock)
uri = "nbd://127.0.0.1:%d/" % port

# ---- statistics: exact counts ----
h = nbd.NBD()
h.connect_uri(uri + "tank/stats")
before = ctl.call("vol.iostat", name="tank/stats")["ops"]
nread, nwrite, nflush, ntrim, nzero, ncache = 7, 11, 3, 2, 4, 5
rbytes = wbytes = 0
for i in range(nwrite):
    n = 4096 * (i + 1)
    h.pwrite(bytes([i + 1]) * n, i * 65536)
    wbytes += n
for i in range(nread):
    n = 512 * (i + 1)
    h.pread(n, i * 65536)
    rbytes += n
for i in range(nflush):
    h.flush()
for i in range(ntrim):
    h.trim(65536, (20 + i) * 65536)
for i in range(nzero):
    h.zero(8192, (30 + i) * 65536)
for i in range(ncache):
    h.cache(65536, i * 65536)
st = ctl.call("vol.iostat", name="tank/stats")["ops"]
for kind, want in (("read", nread), ("write", nwrite), ("flush", nflush), ("trim", ntrim), ("zero", nzero),
                   ("cache", ncache)):
    got = st[kind]["count"] - before[kind]["count"]
    check(got == want, "iostat %s count %d, the client did %d" % (kind, got, want))
    check(st[kind]["errors"] == 0, "iostat %s errors" % kind)
    check(st[kind]["in_flight"] == 0, "iostat %s in flight after the replies" % kind)
    check(sum(st[kind]["histogram_us"]) == st[kind]["count"], "histogram of %s sums to its count" % kind)
check(st["read"]["bytes"] - before["read"]["bytes"] == rbytes, "iostat read bytes")
check(st["write"]["bytes"] - before["write"]["bytes"] == wbytes, "iostat write bytes")
check(st["trim"]["bytes"] - before["trim"]["bytes"] == ntrim * 65536, "iostat trim bytes")
h.shutdown()
# a second connection adds to the same volume's counters
h = nbd.NBD()
h.connect_uri(uri + "tank/stats")
h.pread(4096, 0)
h.shutdown()
st2 = ctl.call("vol.iostat", name="tank/stats")["ops"]
check(st2["read"]["count"] == st["read"]["count"] + 1, "counters are per volume, across connections")
try:
    ctl.call("vol.iostat", name="tank/nope")
    fail("iostat of a missing volume succeeded")
except RuntimeError as e:
    check("VOLUME_NOT_FOUND" in str(e), "missing volume: %s" % e)

# ---- fault: exactly the Nth write fails ----
h = nbd.NBD()
h.connect_uri(uri + "tank/fault")
h.pwrite(b"\x11" * 4096 * 6, 0)
r = ctl.call("test.vio_fault", name="tank/fault", action="fail", ops=["write"], nth=3, errno=errno.EIO)
check(r["injected"] == 0, "fresh rule")
results = []
for i in range(6):
    try:
        h.pwrite(bytes([0x20 + i]) * 4096, i * 4096)
        results.append(0)
    except nbd.Error as e:
        results.append(e.errno if isinstance(e.errno, int) else getattr(errno, e.errno))
check(results == [0, 0, errno.EIO, 0, 0, 0], "writes' outcomes %r: only the 3rd fails, with EIO" % results)
data = h.pread(4096 * 6, 0)
for i in range(6):
    want = 0x11 if i == 2 else 0x20 + i
    check(data[i * 4096:(i + 1) * 4096] == bytes([want]) * 4096, "block %d after the injected failure" % i)
r = ctl.call("test.vio_fault", name="tank/fault", action="status")
check(r["matched"] == 6 and r["injected"] == 1, "the rule matched 6 writes and acted once: %r" % r)
st = ctl.call("vol.iostat", name="tank/fault")["ops"]
check(st["write"]["errors"] == 1, "iostat counts the one failed write")
ctl.call("test.vio_fault", name="tank/fault", action="clear")
h.pwrite(b"\x33" * 4096, 2 * 4096)
check(h.pread(4096, 2 * 4096) == b"\x33" * 4096, "writes work after the rule is cleared")
h.shutdown()

# ---- 32 requests of one connection in flight at once ----
h = nbd.NBD()
h.connect_uri(uri + "tank/fault")
ctl.call("test.vio_fault", name="tank/fault", action="stall", ops=["read"])
bufs = [nbd.Buffer(4096) for _ in range(32)]
cookies = [h.aio_pread(bufs[i], i * 4096) for i in range(32)]
held = 0
for _ in range(6000):  # wait for the requests to arrive (a bound on tries, not a time assertion)
    while h.aio_get_direction() & nbd.AIO_DIRECTION_WRITE:
        h.poll(0)
    held = ctl.call("test.vio_fault", name="tank/fault", action="status")["held"]
    if held == 32:
        break
    time.sleep(0.01)
check(held == 32, "32 reads held in the layer at once (saw %d)" % held)
check(all(not h.aio_command_completed(c) for c in cookies), "nothing answered while held")
inflight = ctl.call("vol.iostat", name="tank/fault")["ops"]["read"]["in_flight"]
check(inflight == 32, "the statistics layer above sees 32 reads in flight (%d)" % inflight)
r = ctl.call("test.vio_fault", name="tank/fault", action="release")
check(r["released"] == 32 and r["max_held"] == 32, "released 32: %r" % r)
ctl.call("test.vio_fault", name="tank/fault", action="clear")
while h.aio_in_flight() > 0:
    h.poll(-1)
for i in range(32):
    check(h.aio_command_completed(cookies[i]), "read %d completed" % i)
    want = b"\x33" if i == 2 else bytes([0x20 + i]) if i < 6 else b"\0"
    check(bytes(bufs[i].to_bytearray()) == want * 4096, "read %d data" % i)
h.shutdown()
# requests already read when the client half-closes (EOF) are answered first, even those
# parsed after the EOF was seen (here: held in the layer until after the EOF)
import socket
import struct
from viohelp import nbd_raw, recvn
ctl.call("test.vio_fault", name="tank/fault", action="stall", ops=["read"])
s, _ = nbd_raw(port, "tank/fault")
s.sendall(b"".join(struct.pack(">IHHQQI", 0x25609513, 0, 0, 100 + i, i * 4096, 4096) for i in range(300)))
s.shutdown(socket.SHUT_WR)
for _ in range(6000):
    if ctl.call("test.vio_fault", name="tank/fault", action="status")["held"] > 0:
        break
    time.sleep(0.01)
ctl.call("test.vio_fault", name="tank/fault", action="clear")
ctl.call("test.vio_fault", name="tank/fault", action="release")
seen = set()
while True:
    h = recvn(s, 16)
    if h is None:
        break
    magic, err, cookie = struct.unpack(">IIQ", h)
    check(magic == 0x67446698 and err == 0, "reply after EOF")
    recvn(s, 4096)
    seen.add(cookie)
check(seen == set(range(100, 400)), "all 300 reads sent before EOF were answered (%d)" % len(seen))
s.close()
print("ok: statistics exact, Nth write failed alone, 32 in flight on one connection, answered after EOF")
