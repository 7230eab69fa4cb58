"""viohelp -- helpers for the volume IO layer tests: the control protocol
over its unix socket (16-byte little-endian header, JSON), the NBD
handshake over a raw socket, and caskd's thread count and RSS from /proc."""
import json
import os
import socket
import struct
import sys


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Ctl:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.id = 0

    def call(self, op, **args):
        self.id += 1
        body = json.dumps({"op": op, "args": args}).encode()
        self.s.sendall(struct.pack("<IHHII", 0x4B534143, 1, 1, self.id, len(body)) + body)
        h = recvn(self.s, 16)
        magic, ver, kind, rid, length = struct.unpack("<IHHII", h)
        check(magic == 0x4B534143 and rid == self.id, "control reply framing")
        r = json.loads(recvn(self.s, length))
        if not r.get("ok"):
            raise RuntimeError("%s: %s" % (r["error"]["code"], r["error"]["message"]))
        return r["result"]


def recvn(s, n):
    b = bytearray()
    while len(b) < n:
        k = s.recv(n - len(b))
        if not k:
            return None if not b else bytes(b)
        b += k
    return bytes(b)


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    fail("no %s in /proc/%d/status" % (key, pid))


def threads(pid):
    return proc_status(pid, "Threads")


def rss_kib(pid):
    return proc_status(pid, "VmRSS")


def nbd_raw(port, export, structured=False):
    """A raw socket through fixed newstyle haggling and GO; returns (socket, size)."""
    s = socket.create_connection(("127.0.0.1", port))
    h = recvn(s, 18)
    check(h[:16] == b"NBDMAGICIHAVEOPT", "greeting")
    s.sendall(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES
    name = export.encode()
    payload = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    s.sendall(b"IHAVEOPT" + struct.pack(">II", 7, len(payload)) + payload)
    size = None
    while True:
        magic, opt, rtype, rlen = struct.unpack(">QIII", recvn(s, 20))
        body = recvn(s, rlen) if rlen else b""
        if rtype == 3 and struct.unpack(">H", body[:2])[0] == 0:
            size = struct.unpack(">Q", body[2:10])[0]
        if rtype == 1:
            return s, size
        if rtype & 0x80000000:
            raise RuntimeError("GO refused: %r" % body)


def nbd_raw_refusal(port, export):
    """The message a refused client gets for GO (raw socket), or None if it was served."""
    try:
        s, _ = nbd_raw(port, export)
    except RuntimeError as e:
        return str(e)
    s.close()
    return None
