#!/usr/bin/python3
"""nbd_fuzz_hostile -- the hostile-client cases of the raw-NBD fuzzer (issue
17), run by nbd_fuzz.sh against a caskd started with short --stall-timeout,
--handshake-timeout and --idle-timeout and a small --cache.

* Never-read replies: NR clients negotiate GO and then only send random
  READs (random offsets, lengths up to 1 MiB, random pipelining) and
  never read a reply. caskd must stop reading each (the client's send
  blocks: it took fewer requests than were offered), keep its RSS under
  the bound documented in ARCHITECTURE.md 10a, serve the other clients
  meanwhile, and cut each one off (--stall-timeout).
* Idle floods: NI connections in random half-open states -- TCP connect
  only, greeting read but no flags, flags but half an option header,
  an option's header without its payload, GO done and then silence --
  must all be dropped (the first four by --handshake-timeout, the last by
  --idle-timeout) while other clients are served.

Assertions are on outcomes (served, took fewer requests, cut off, RSS
under its bound), never on how long anything took: waits are bounded
numbers of tries.
Usage: nbd_fuzz_hostile.py PORT CASKD_PID LOG CACHE_MIB
"""
import os
import random
import select
import socket
import struct
import sys
import time

import nbd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from viohelp import nbd_raw, recvn, rss_kib  # noqa: E402

port, pid, log, cache_mib = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
uri = "nbd://127.0.0.1:%d/tank/h" % port
seed = int(os.environ.get("CASK_FUZZ_SEED", int(time.time())))
rnd = random.Random(seed)
print("hostile: seed", seed, flush=True)
MIB = 1 << 20
NR = 3    # never-read clients
NI = 40   # idle / half-open connections

# documented limits (ARCHITECTURE.md 10a; conn.c QUEUE_BYTES, RBUF_SIZE, nbd.c PBUF_KEEP*)
QUEUE_KIB, RBUF_KIB, PBUF_KIB, WORKERS, STACK_KIB = 64 * 1024, 256, 4 * 1024, 32, 512


def fail(msg):
    print("FAIL:", msg, "(seed %d)" % seed, file=sys.stderr)
    sys.exit(1)


def served(where, k):
    """A fresh well-behaved client writes, flushes and reads back."""
    h = nbd.NBD()
    h.connect_uri(uri)
    pat = bytes([k % 251 + 1]) * 4096
    h.pwrite(pat, (100 + k % 64) * 4096)
    h.flush()
    if h.pread(4096, (100 + k % 64) * 4096) != pat:
        fail("a well-behaved client read something else (%s)" % where)
    h.shutdown()


def count_in_log(text):
    with open(log, errors="replace") as f:
        return f.read().count(text)


def closed(s):
    """True once the server closed s (EOF or reset), reading whatever it still sent."""
    try:
        while True:
            r, _, _ = select.select([s], [], [], 0)
            if not r:
                return False
            if not s.recv(1 << 20):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True


h = nbd.NBD()
h.connect_uri(uri)
size = h.get_size()
h.pwrite(b"\x5a" * (4 * MIB), 0)
for _ in range(4):
    h.pread(4 * MIB, 0)   # warm the read path and its buffers
h.shutdown()
served("start", 0)
rss0 = rss_kib(pid)

# ---- idle flood: half-open handshakes and silent served clients ----
idle = []
kinds = {}
for i in range(NI):
    kind = rnd.choice(["connect", "greeting", "flags", "half-header", "no-payload", "go-idle"])
    kinds[kind] = kinds.get(kind, 0) + 1
    if kind == "go-idle":
        s, _ = nbd_raw(port, "tank/h")
    else:
        s = socket.create_connection(("127.0.0.1", port))
        if kind != "connect":
            if recvn(s, 18)[:16] != b"NBDMAGICIHAVEOPT":
                fail("bad greeting")
        if kind in ("flags", "half-header", "no-payload"):
            s.sendall(struct.pack(">I", 3))
        if kind == "half-header":
            s.sendall(b"IHAVEOPT" + struct.pack(">I", 7)[:rnd.randrange(1, 4)])
        if kind == "no-payload":
            s.sendall(b"IHAVEOPT" + struct.pack(">II", 7, rnd.randrange(10, 4096)))
    idle.append((kind, s))
served("during the idle flood", 1)

# ---- never-read replies ----
NREQ = 400000  # far more than caskd may queue (256) and the sockets buffer (11 MB of requests)
streams = []
for k in range(NR):
    reqs = []
    for i in range(NREQ):
        length = rnd.choice([4096, 65536, MIB, rnd.randrange(1, MIB + 1)])
        off = rnd.randrange(0, size - length + 1)
        reqs.append(struct.pack(">IHHQQI", 0x25609513, 0, 0, i + 1, off, length))
    streams.append(b"".join(reqs))
readers = []
offered, taken = 0, []
for k in range(NR):
    s, _ = nbd_raw(port, "tank/h")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
    s.setblocking(False)
    readers.append(s)
    req = streams[k]
    offered += NREQ
    sent, stuck = 0, 0
    while sent < len(req) and stuck < 10:
        try:
            sent += s.send(req[sent:sent + (1 << 20)])
            stuck = 0
        except BlockingIOError:
            stuck += 1    # caskd stopped reading this client
            select.select([], [s], [], 0.1)
        except (BrokenPipeError, ConnectionResetError):
            break         # throttled and already cut off (--stall-timeout): checked in the log below
    n = sent // 28
    if n >= NREQ:
        fail("caskd took every request of a client that reads no replies (%d)" % n)
    taken.append(n)
    served("beside never-read client %d" % k, 2 + k)

rss1 = rss_kib(pid)
bound = NR * (QUEUE_KIB + RBUF_KIB + PBUF_KIB) + NI * RBUF_KIB + cache_mib * 1024 + WORKERS * STACK_KIB
grow = rss1 - rss0
print("hostile: %d never-read clients took %s of %d requests offered; %d idle connections %s; "
      "RSS +%d KiB (bound +%d KiB)" % (NR, taken, offered, NI, kinds, grow, bound), flush=True)
if grow > bound:
    fail("caskd's RSS grew by %d KiB, past its documented bound of %d KiB" % (grow, bound))

# ---- every hostile client is cut off; the others are still served ----
# the never-readers first, by caskd's log (reading their replies would un-stall them)
for _ in range(1200):
    if count_in_log("has not read its replies; cut off") >= NR:
        break
    time.sleep(0.05)
else:
    fail("only %d of %d never-read clients were cut off" % (count_in_log("has not read its replies; cut off"), NR))
for s in readers:
    s.setblocking(True)
    s.settimeout(60)
    got = 0
    try:
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            got += len(b)
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
left = list(idle)
for t in range(1200):
    left = [(kind, s) for kind, s in left if not closed(s)]
    if not left:
        break
    if t % 100 == 0:
        served("while the idle flood is cut off", 10 + t // 100)
    time.sleep(0.05)
else:
    fail("%d idle or half-open connections were never dropped: %s" % (len(left), sorted({k for k, _ in left})))
for _, s in idle:
    s.close()
served("after every hostile client was cut off", 99)
rss2 = rss_kib(pid)
if rss2 - rss0 > bound:
    fail("caskd's RSS is %d KiB over its start after the cut-offs, past the bound %d KiB" % (rss2 - rss0, bound))
print("hostile: ok (all cut off; RSS +%d KiB after)" % (rss2 - rss0))
