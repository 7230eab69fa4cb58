"""nbd_many -- many connections on a fixed number of threads (python3-libnbd
and raw sockets against a real caskd with the default --max-connections):
  * 1,000 connections at once, each doing a write and a read of its own
    block with all of them in flight together; every read returns what its
    connection wrote;
  * caskd's thread count (/proc/PID/status) does not grow with them;
  * with 1,024 connected, the 1,025th is refused: libnbd sees the error,
    and the refusal names the limit;
  * caskd survives and serves again once they are gone.
Usage: nbd_many.py PORT CASKD_PID"""
import sys
import time

import nbd

from viohelp import check, fail, nbd_raw_refusal, rss_kib, threads

port, pid = int(sys.argv[1]), int(sys.argv[2])
uri = "nbd://127.0.0.1:%d/tank/v" % port
N = 1000

# warm up: one connection served, then the baseline
h = nbd.NBD()
h.connect_uri(uri)
h.pread(4096, 0)
h.shutdown()
time.sleep(0.5)  # let control-socket client threads of the setup exit (not an assertion)
base = threads(pid)
rss0 = rss_kib(pid)

hs = []
for i in range(N):
    h = nbd.NBD()
    h.connect_uri(uri)
    hs.append(h)
t_conn = threads(pid)
rss_idle = rss_kib(pid)
check(t_conn <= base, "threads grew from %d to %d with %d connections" % (base, t_conn, N))

# every connection writes its block and reads it back, all in flight together
wbufs = [nbd.Buffer.from_bytearray(bytearray(i.to_bytes(4, "little") * 1024)) for i in range(N)]
wc = [hs[i].aio_pwrite(wbufs[i], i * 4096) for i in range(N)]
for i in range(N):
    while not hs[i].aio_command_completed(wc[i]):
        hs[i].poll(-1)
rbufs = [nbd.Buffer(4096) for _ in range(N)]
rc = [hs[i].aio_pread(rbufs[i], i * 4096) for i in range(N)]
t_io = threads(pid)
for i in range(N):
    while not hs[i].aio_command_completed(rc[i]):
        hs[i].poll(-1)
    check(bytes(rbufs[i].to_bytearray()) == i.to_bytes(4, "little") * 1024, "connection %d read its block" % i)
t_after = threads(pid)
check(t_io <= base and t_after <= base, "threads %d/%d during IO over %d connections (base %d)" %
      (t_io, t_after, N, base))

# up to the cap (1024), then the 1025th is refused with an error the client sees
for i in range(N, 1024):
    h = nbd.NBD()
    h.connect_uri(uri)
    hs.append(h)
refused = nbd.NBD()
try:
    refused.connect_uri(uri)
    fail("the 1025th connection was served")
except nbd.Error as e:
    msg = str(e)
    check("policy" in msg.lower() or "too many" in msg.lower(), "libnbd's refusal: %s" % msg)
why = nbd_raw_refusal(port, "tank/v")
check(why is not None and "too many connections (limit 1024)" in why, "the refusal names the limit: %r" % why)
check(threads(pid) <= base, "threads at the cap")

for h in hs:
    h.shutdown()
hs = None
# served again (each closed connection frees its place; a bounded number of tries, not a timing check)
for _ in range(1200):
    h = nbd.NBD()
    try:
        h.connect_uri(uri)
        break
    except nbd.Error:
        time.sleep(0.05)
else:
    fail("no connection served after the 1024 closed")
check(h.pread(4096, 7 * 4096) == (7).to_bytes(4, "little") * 1024, "data after the crowd left")
h.shutdown()
print("ok: %d connections on %d threads (idle RSS %d -> %d KiB), 1025th refused" % (N, base, rss0, rss_idle))
