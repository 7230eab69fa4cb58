#!/usr/bin/python3
"""nbd_fuzz -- random NBD traffic against caskd (run by nbd_fuzz.sh).

Option haggling: connections that send random options (known and
unknown numbers, random and well-formed payloads, export names that
exist and that do not); every reply must be well formed and answer the
option asked, or the server closes the connection. Some names carry a
NUL or a forged log line with terminal escapes (nbd_fuzz.sh checks that
the log, at debug level, shows them escaped).

Transmission: one connection sends random commands (known and unknown
types, random flags, offsets in and past the export, lengths from 0 to
2^32-1) with simple replies; every reply must carry the request's cookie
and an errno the protocol allows, and every successful read must return
what a model of the export holds (writes, write-zeroes and trims that
succeeded). A well-behaved second client (libnbd) must keep working.

CASK_FUZZ_SEED repeats a run (the seed is printed), CASK_FUZZ_N sets the
number of commands.
"""
import os
import random
import socket
import struct
import sys
import time

import nbd

URI = os.environ["CASK_TEST_URI"]
PORT = int(os.environ["CASK_TEST_PORT"])
EXPORT = URI.split("/", 3)[3].encode()
seed = int(os.environ.get("CASK_FUZZ_SEED", int(time.time())))
N = int(os.environ.get("CASK_FUZZ_N", "3000"))
print("seed", seed, "commands", N, flush=True)
rnd = random.Random(seed)

OPT_MAGIC = 0x3e889045565a9
ALLOWED = {0, 1, 5, 12, 22, 28, 75, 95, 108}  # 0, EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP, ESHUTDOWN


def fail(msg):
    print("FAIL:", msg, "(seed %d)" % seed, file=sys.stderr)
    sys.exit(1)


def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            return None
        b += c
    return b


def connect():
    s = socket.create_connection(("127.0.0.1", PORT))
    s.settimeout(20)
    return s


good = nbd.NBD()
good.connect_uri(URI)
size = good.get_size()
good.pwrite(b"\x42" * 4096, 0)
good.flush()


def witness(where):
    if good.pread(4096, 0) != b"\x42" * 4096:
        fail("the well-behaved client read something else (%s)" % where)


# ---- option haggling ----
def option_payload(opt):
    r = rnd.random()
    name = rnd.choice([EXPORT, b"tank/none", b"", b"x" * 5000, EXPORT + b"@nosnap",
                       bytes(rnd.randrange(256) for _ in range(20)), "\u00e9\u20ac".encode() * 300,
                       EXPORT + b"\0junk",     # never EXPORT (issue 17 item 7)
                       b"a\nFAKE pool tank SUSPENDED\x1b[31m", EXPORT + b"\r\nFAKE pool tank SUSPENDED\x1b]0;t\x07"])
    if r < 0.5 and opt in (6, 7):      # INFO/GO: name length, name, info requests
        infos = [rnd.randrange(8) for _ in range(rnd.randrange(4))]
        return struct.pack(">I", len(name)) + name + struct.pack(">H", len(infos)) + b"".join(
            struct.pack(">H", i) for i in infos)
    if r < 0.5 and opt in (9, 10):     # meta contexts: export name, queries
        qs = [rnd.choice([b"base:allocation", b"base:", b"", b"qemu:dirty", b"x" * 300]) for _ in range(rnd.randrange(3))]
        return struct.pack(">I", len(name)) + name + struct.pack(">I", len(qs)) + b"".join(
            struct.pack(">I", len(q)) + q for q in qs)
    if r < 0.7:
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 64)))
    return name


haggles = replies = 0
for k in range(200):
    s = connect()
    hello = recvn(s, 18)
    if hello is None or hello[:16] != b"NBDMAGICIHAVEOPT":
        fail("bad greeting")
    s.sendall(struct.pack(">I", rnd.choice([1, 3, 3, 3, 0, 7])))
    alive = True
    for _ in range(rnd.randrange(1, 8)):
        opt = rnd.choice([1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 0, 99, 0x7fffffff])
        if opt == 1 and rnd.random() < 0.7:
            opt = 3
        payload = option_payload(opt)
        try:
            s.sendall(b"IHAVEOPT" + struct.pack(">II", opt, len(payload)) + payload)
        except OSError:
            alive = False
            break
        haggles += 1
        if opt == 1:   # EXPORT_NAME: transmission begins (size, flags[, zeroes]) or the server closes
            break
        # replies until a final one (ACK, or an error), or the server closes
        while True:
            try:
                h = recvn(s, 20)
            except OSError:
                h = None
            if h is None:
                alive = False
                break
            magic, ropt, rtype, rlen = struct.unpack(">QIII", h)
            if magic != OPT_MAGIC or ropt != opt:
                fail("option reply magic %x / option %d for option %d" % (magic, ropt, opt))
            body = recvn(s, rlen) if rlen <= 64 << 20 else None
            if body is None:
                fail("option reply of %d bytes" % rlen)
            if rtype & 0x80000000:
                try:
                    body.decode("utf-8")                  # the protocol's messages are UTF-8
                except UnicodeDecodeError:
                    fail("option %d's error message is not UTF-8: %r" % (opt, body[:100]))
            replies += 1
            if rtype == 1 or rtype & 0x80000000:
                break
        if not alive or opt in (2, 7) and rtype == 1:   # ABORT acked / GO succeeded: done here
            break
    s.close()
    if k % 50 == 0:
        witness("option haggling")
witness("after option haggling")
print("option haggling: %d options, %d replies" % (haggles, replies), flush=True)

# ---- transmission ----
s = connect()
recvn(s, 18)
s.sendall(struct.pack(">I", 3))
s.sendall(b"IHAVEOPT" + struct.pack(">II", 1, len(EXPORT)) + EXPORT)
h = recvn(s, 10)
if h is None or struct.unpack(">Q", h[:8])[0] != size:
    fail("EXPORT_NAME did not answer the export's size")
model = bytearray(size)
model[0:4096] = b"\x42" * 4096
stats = {}
cookie = 0
for i in range(N):
    cookie += 1
    typ = rnd.choice([0, 0, 0, 1, 1, 1, 3, 4, 4, 6, 6, 7, 5, 9, 200, 0xffff])
    r = rnd.random()
    flags = 0 if r < 0.6 else 1 if r < 0.75 else rnd.choice([2, 4, 8, 16, 3, 0x20, rnd.randrange(1 << 16)])
    r = rnd.random()
    off = rnd.randrange(size) if r < 0.5 else rnd.randrange(size // 4096) * 4096 if r < 0.85 else \
        rnd.choice([size, size - 512, 2 ** 63, 2 ** 64 - 1])
    r = rnd.random()
    length = rnd.randrange(1, 1 << 18) if r < 0.6 else rnd.choice([4096, 65536]) if r < 0.8 else \
        rnd.choice([0, 1, 511, rnd.randrange(1, 1 << 20), 33 << 20, 2 ** 32 - 1])
    if off < 4096 and typ in (1, 4, 6):
        off += 4096                                   # keep the witness's block
    payload = b""
    if typ == 1:
        if length > 1 << 20:
            length = rnd.randrange(1, 1 << 20)
        payload = bytes(rnd.randrange(256) for _ in range(min(length, 64))) * (length // 64 + 1)
        payload = payload[:length]
    s.sendall(struct.pack(">IHHQQI", 0x25609513, flags, typ, cookie, off, length) + payload)
    r = recvn(s, 16)
    if r is None:
        fail("the server closed the connection after type %d flags %#x off %d len %d" % (typ, flags, off, length))
    magic, err, rcookie = struct.unpack(">IIQ", r)
    if magic != 0x67446698 or rcookie != cookie or err not in ALLOWED:
        fail("reply magic %#x err %d cookie %d for cookie %d (type %d)" % (magic, err, rcookie, cookie, typ))
    stats["%d:%d" % (typ, err)] = stats.get("%d:%d" % (typ, err), 0) + 1
    if err != 0:
        continue
    end = off + length
    if typ == 0:
        data = recvn(s, length)
        if data != bytes(model[off:end]):
            fail("read of %d bytes at %d differs from what was written" % (length, off))
    elif typ == 1:
        model[off:end] = payload
    elif typ in (4, 6):
        model[off:end] = bytes(length)
    if typ in (1, 4, 6) and end > size:
        fail("a write of %d bytes at %d past the end (%d) succeeded" % (length, off, size))
    if i % 500 == 0:
        witness("transmission")
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 0, 0, 0))   # DISC
s.close()
witness("after transmission")


# ---- transmission with structured replies and base:allocation ----
def opt(sock, o, payload):
    sock.sendall(b"IHAVEOPT" + struct.pack(">II", o, len(payload)) + payload)
    out = []
    while True:
        magic, ropt, rtype, rlen = struct.unpack(">QIII", recvn(sock, 20))
        body = recvn(sock, rlen)
        if magic != OPT_MAGIC or ropt != o:
            fail("option reply")
        out.append((rtype, body))
        if rtype == 1 or rtype & 0x80000000:
            return out


s = connect()
recvn(s, 18)
s.sendall(struct.pack(">I", 3))
if opt(s, 8, b"")[-1][0] != 1:
    fail("structured replies refused")
q = b"base:allocation"
rep = opt(s, 10, struct.pack(">I", len(EXPORT)) + EXPORT + struct.pack(">II", 1, len(q)) + q)
ctx = [struct.unpack(">I", b[:4])[0] for t, b in rep if t == 4]
if rep[-1][0] != 1 or len(ctx) != 1:
    fail("base:allocation not negotiated")
if opt(s, 7, struct.pack(">I", len(EXPORT)) + EXPORT + struct.pack(">H", 0))[-1][0] != 1:
    fail("GO refused")
stats = {}
for i in range(N // 2):
    cookie += 1
    typ = rnd.choice([0, 0, 0, 1, 1, 4, 6, 7, 7, 7, 3])
    flags = 0 if rnd.random() < 0.7 else rnd.choice([1, 2, 4, 8, 16, rnd.randrange(1 << 16)])
    off = rnd.randrange(size) if rnd.random() < 0.9 else rnd.choice([size, 2 ** 64 - 1])
    length = rnd.randrange(1, 1 << 18) if rnd.random() < 0.9 else rnd.choice([0, 33 << 20, 2 ** 32 - 1])
    if off < 4096 and typ in (1, 4, 6):
        off += 4096
    payload = b""
    if typ == 1:
        length = min(length, 1 << 18)
        payload = bytes([rnd.randrange(1, 256)]) * length
    s.sendall(struct.pack(">IHHQQI", 0x25609513, flags, typ, cookie, off, length) + payload)
    err, got, extents = 0, {}, []
    while True:
        try:
            h = recvn(s, 4)
            simple = h is not None and struct.unpack(">I", h)[0] == 0x67446698
            rest = recvn(s, 12 if simple else 16) if h is not None else None
        except socket.timeout:
            fail("no answer to structured type %d flags %#x offset %d length %d" % (typ, flags, off, length))
        if h is None or rest is None:
            fail("closed after structured type %d" % typ)
        if simple:     # allowed for commands that return no data
            serr, scookie = struct.unpack(">IQ", rest)
            if typ in (0, 7) or scookie != cookie or serr not in ALLOWED:
                fail("simple reply (errno %d, cookie %d) to type %d" % (serr, scookie, typ))
            err = serr
            break
        magic, cflags, ctype, ccookie, clen = struct.unpack(">IHHQI", h + rest)
        body = recvn(s, clen) if clen else b""
        if ccookie != cookie:
            fail("chunk for cookie %d, want %d" % (ccookie, cookie))
        if magic != 0x668e33ef:
            fail("chunk magic %#x" % magic)
        if ctype & 0x8000:
            err = struct.unpack(">I", body[:4])[0]
            mlen = struct.unpack(">H", body[4:6])[0]
            try:
                body[6:6 + mlen].decode("utf-8")
            except UnicodeDecodeError:
                fail("error chunk message is not UTF-8")
            if err not in ALLOWED or err == 0:
                fail("error chunk errno %d" % err)
        elif ctype == 1:      # OFFSET_DATA
            o = struct.unpack(">Q", body[:8])[0]
            got[o] = body[8:]
        elif ctype == 2:      # OFFSET_HOLE
            o, n = struct.unpack(">QI", body[:12])
            got[o] = bytes(n)
        elif ctype == 5:      # BLOCK_STATUS
            if struct.unpack(">I", body[:4])[0] != ctx[0]:
                fail("block status for another context")
            for j in range(4, len(body), 8):
                extents.append(struct.unpack(">II", body[j:j + 8]))
        elif ctype != 0:
            fail("chunk type %d" % ctype)
        if cflags & 1:        # DONE
            break
    stats["%d:%d" % (typ, err)] = stats.get("%d:%d" % (typ, err), 0) + 1
    if err:
        continue
    end = off + length
    if typ == 0:
        pos = off
        for o in sorted(got):
            if o != pos:
                fail("read chunks leave a gap at %d" % pos)
            if got[o] != bytes(model[o:o + len(got[o])]):
                fail("structured read at %d differs from what was written" % o)
            pos += len(got[o])
        if pos != end:
            fail("read chunks end at %d, want %d" % (pos, end))
    elif typ == 1:
        model[off:end] = payload
    elif typ in (4, 6):
        model[off:end] = bytes(length)
    elif typ == 7:
        pos = off
        for n, fl in extents:
            if n == 0:
                fail("an empty block status extent")
            if fl & 1 and any(model[pos:min(pos + n, size)]):   # a hole must read as zeros
                fail("block status says hole at %d+%d where data was written" % (pos, n))
            pos += n
        if not extents or pos <= off:
            fail("block status described nothing")
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 0, 0, 0))
s.close()
witness("after structured transmission")
print("structured:", " ".join("%s=%d" % kv for kv in sorted(stats.items())))
# everything written is there for the other client too
data = good.pread(size, 0)
if data != bytes(model):
    fail("the export differs from the model after the fuzz")
good.shutdown()
print("transmission:", " ".join("%s=%d" % kv for kv in sorted(stats.items())))
print("nbd_fuzz: ok")
