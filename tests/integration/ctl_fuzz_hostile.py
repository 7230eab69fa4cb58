#!/usr/bin/python3
"""ctl_fuzz_hostile -- the hostile-client cases of the control-protocol
fuzzer (issue 17), run by ctl_fuzz.sh against the release caskd.

* Idle floods: NI control connections left in random half-open states
  (silent; half a frame header; a header announcing up to 1 MiB and part of
  that payload). Other clients are still served; past the documented limit
  of 256 control clients a new one gets a well-formed BUSY ("too many
  control clients"), never a hang; once the flood closes, all are served.
* Never-read replies: a client pipelines NR requests (pool.status,
  vol.list, hello) and never reads an answer: caskd stops reading it (the
  client's send blocks: fewer taken than offered) and serves the others.
* RSS stays under a bound computed from the documented limits
  (ARCHITECTURE.md 10a: a control client holds at most one frame of 1 MiB
  and one answer in memory; it holds no thread: the loop assembles frames
  and a worker pool runs whole ones), and the idle flood adds no thread.

Assertions are on outcomes, never on time; waits are bounded tries.
Usage: ctl_fuzz_hostile.py SOCK CASKD_PID
"""
import json
import os
import random
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from viohelp import rss_kib, threads  # noqa: E402

path, pid = sys.argv[1], int(sys.argv[2])
seed = int(os.environ.get("CASK_FUZZ_SEED", int(time.time())))
rnd = random.Random(seed)
print("ctl hostile: seed", seed, flush=True)
MAGIC, CTL_MAX, MAX_CLIENTS = 0x4b534143, 1 << 20, 256
THREAD_KIB = 256   # a client thread's touched stack and its share of malloc's per-thread arenas
NI = 200


def fail(msg):
    print("FAIL:", msg, "(seed %d)" % seed, file=sys.stderr)
    sys.exit(1)


def conn():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.settimeout(30)
    return s


def frame(req, rid):
    body = json.dumps(req).encode()
    return struct.pack("<IHHII", MAGIC, 1, 1, rid, len(body)) + body


def answer(s):
    h = b""
    while len(h) < 16:
        c = s.recv(16 - len(h))
        if not c:
            return None
        h += c
    magic, ver, kind, rid, ln = struct.unpack("<IHHII", h)
    b = b""
    while len(b) < ln:
        c = s.recv(ln - len(b))
        if not c:
            return None
        b += c
    if magic != MAGIC or kind != 2:
        fail("a malformed answer frame")
    return json.loads(b)


def served(where):
    s = conn()
    s.sendall(frame({"op": "hello"}, 1))
    r = answer(s)
    if r is None or not r.get("ok"):
        fail("a well-behaved control client was not served (%s): %r" % (where, r))
    s.sendall(frame({"op": "pool.status", "args": {"name": "tank"}}, 2))
    r = answer(s)
    if r is None or not r.get("ok"):
        fail("pool.status was not served (%s): %r" % (where, r))
    s.close()


served("start")
rss0 = rss_kib(pid)
threads0 = threads(pid)

# ---- idle flood ----
flood, kinds = [], {}
for i in range(NI):
    kind = rnd.choice(["silent", "half-header", "part-payload"])
    kinds[kind] = kinds.get(kind, 0) + 1
    s = conn()
    if kind == "half-header":
        s.sendall(struct.pack("<IHHII", MAGIC, 1, 1, i, 100)[:rnd.randrange(1, 16)])
    elif kind == "part-payload":
        ln = rnd.choice([CTL_MAX, rnd.randrange(1, CTL_MAX + 1)])
        s.sendall(struct.pack("<IHHII", MAGIC, 1, 1, i, ln) + b"{" * rnd.randrange(0, min(ln, 64 << 10)))
    flood.append(s)
    if i % 50 == 0:
        served("during the idle flood (%d held)" % (i + 1))
served("beside %d idle control connections" % NI)
# a client whose frame is not whole holds no thread (the loop assembles frames; workers run whole ones)
threads1 = threads(pid)
if threads1 > threads0:
    fail("caskd's threads went from %d to %d with %d idle control connections" % (threads0, threads1, NI))

# ---- never-read replies ----
nr = conn()
nr.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
nr.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
NR = 100000
stream = b"".join(frame(rnd.choice([{"op": "pool.status", "args": {"name": "tank"}}, {"op": "vol.list"},
                                    {"op": "hello"}, {"op": "pool.list"}]), i + 1) for i in range(NR))
nr.setblocking(False)
sent, stuck = 0, 0
while sent < len(stream) and stuck < 10:
    try:
        sent += nr.send(stream[sent:sent + (1 << 20)])
        stuck = 0
    except BlockingIOError:
        stuck += 1   # caskd stopped reading it: its answers are not being read
        select.select([], [nr], [], 0.1)
if sent >= len(stream):
    fail("caskd read all %d requests of a client that reads no answers" % NR)
served("beside a never-read control client")

rss1 = rss_kib(pid)
bound = (NI + 1) * (CTL_MAX // 1024 + THREAD_KIB)
grow = rss1 - rss0
print("ctl hostile: %d idle connections %s; a never-read client took %d of %d bytes of requests; RSS +%d KiB "
      "(bound +%d KiB)" % (NI, kinds, sent, len(stream), grow, bound), flush=True)
if grow > bound:
    fail("caskd's RSS grew by %d KiB, past its bound of %d KiB" % (grow, bound))

# ---- past the limit: a clear refusal ----
extra, busy = [], 0
for i in range(MAX_CLIENTS + 8 - NI - 1):
    s = conn()
    extra.append(s)
    r, _, _ = select.select([s], [], [], 0)
    if r:
        a = answer(s)
        if a is None or a.get("ok") or a.get("error", {}).get("code") != "BUSY":
            fail("a control client past the limit got %r instead of BUSY" % (a,))
        busy += 1
# the refusal is sent at accept: read what is pending on the last few
for s in extra[-8:]:
    s.settimeout(30)
    try:
        a = answer(s)
    except socket.timeout:
        fail("a control client past the limit of %d was neither served nor refused" % MAX_CLIENTS)
    if a is None or a.get("ok") or a.get("error", {}).get("code") != "BUSY":
        fail("a control client past the limit got %r instead of BUSY" % (a,))
print("ctl hostile: past %d control clients, new ones are refused with BUSY" % MAX_CLIENTS, flush=True)

# ---- the flood leaves: everyone is served again ----
nr.close()
for s in flood + extra:
    s.close()
for t in range(600):   # the flood's threads end as they see their sockets closed
    try:
        served("after the flood left")
        break
    except (SystemExit, Exception):
        time.sleep(0.05)
served("after the flood left")
for _ in range(600):   # the refused and closed ones are gone: a full set of clients fits again
    held = [conn() for _ in range(MAX_CLIENTS - 8)]
    s = held[-1]
    s.sendall(frame({"op": "hello"}, 1))
    a = answer(s)
    for h in held:
        h.close()
    if a is not None and a.get("ok"):
        break
    time.sleep(0.05)
else:
    fail("the flood's slots were never given back")
print("ctl hostile: ok")
