#!/usr/bin/python3
"""nbd_badreq -- bad NBD requests get the protocol's error replies, the
connection goes on where the protocol allows it, and a second client is
served correctly throughout.

Run by nbd_badreq.sh with CASK_TEST_URI (an export) and CASK_TEST_PORT.
Uses python3-libnbd with strict mode off (so libnbd sends what we ask),
and raw sockets for what libnbd will not send at all (unknown commands,
bad magic, oversized writes, garbage during option haggling).
"""
import errno
import os
import socket
import struct
import sys

import nbd

URI = os.environ["CASK_TEST_URI"]
PORT = int(os.environ["CASK_TEST_PORT"])
EXPORT = URI.split("/", 3)[3].encode()
checks = 0


def check(cond, what):
    global checks
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)
    checks += 1


# The witness: a well-behaved client that must keep working.
good = nbd.NBD()
good.connect_uri(URI)
size = good.get_size()
good.pwrite(b"\x42" * 4096, 8192)
good.flush()


def witness():
    check(good.pread(4096, 8192) == b"\x42" * 4096, "witness read")


def expect_error(fn, errno_name, what):
    try:
        fn()
    except nbd.Error as e:
        # python3-libnbd reports the errno by name ("EINVAL"); accept a number too
        want = getattr(errno, errno_name)
        check(e.errno in (errno_name, want), "%s: got %s, want %s" % (what, e, errno_name))
        witness()
        return
    check(False, "%s: no error" % what)


bad = nbd.NBD()
bad.set_strict_mode(0)
bad.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
bad.connect_uri(URI)
check(bad.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), "base:allocation negotiated")

expect_error(lambda: bad.pread(4096, size), "EINVAL", "read past the end")
expect_error(lambda: bad.pread(8192, size - 4096), "EINVAL", "read across the end")
expect_error(lambda: bad.pwrite(b"x" * 4096, size), "ENOSPC", "write past the end")
expect_error(lambda: bad.trim(4096, size), "EINVAL", "trim past the end")
expect_error(lambda: bad.zero(4096, size), "ENOSPC", "zero past the end")
expect_error(lambda: bad.pwrite(b"x" * 512, 0, nbd.CMD_FLAG_REQ_ONE), "EINVAL", "write with REQ_ONE")
expect_error(lambda: bad.flush(nbd.CMD_FLAG_FUA), "EINVAL", "flush with FUA")
expect_error(lambda: bad.trim(4096, 0, nbd.CMD_FLAG_NO_HOLE), "EINVAL", "trim with NO_HOLE")
expect_error(lambda: bad.block_status(0, 0, lambda *a: 0), "EINVAL", "block status of zero bytes")
expect_error(lambda: bad.pread(33 * 1024 * 1024, 0), "EINVAL", "read over the 32 MiB maximum")
# after all that, the same connection still works
bad.pwrite(b"\x17" * 1000, 100000)
check(bad.pread(1000, 100000) == b"\x17" * 1000, "bad client's own good request")
bad.shutdown()

# ---- raw sockets ----


def handshake(sock, structured=False):
    hello = sock.recv(18, socket.MSG_WAITALL)
    check(hello[:16] == b"NBDMAGICIHAVEOPT", "greeting")
    sock.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
    if structured:
        sock.sendall(b"IHAVEOPT" + struct.pack(">II", 8, 0))
        h = sock.recv(20, socket.MSG_WAITALL)
        check(struct.unpack(">QIII", h)[2] == 1, "structured reply ack")
    sock.sendall(b"IHAVEOPT" + struct.pack(">II", 1, len(EXPORT)) + EXPORT)
    sock.recv(10, socket.MSG_WAITALL)


def request(sock, typ, off, length, flags=0, cookie=7, payload=b""):
    sock.sendall(struct.pack(">IHHQQI", 0x25609513, flags, typ, cookie, off, length) + payload)


def simple_reply(sock):
    r = sock.recv(16, socket.MSG_WAITALL)
    magic, err, cookie = struct.unpack(">IIQ", r)
    check(magic == 0x67446698, "simple reply magic")
    return err, cookie


def connect():
    return socket.create_connection(("127.0.0.1", PORT))


# unknown command: EINVAL, and the connection goes on
s = connect()
handshake(s)
request(s, 99, 0, 0, cookie=1)
check(simple_reply(s) == (22, 1), "unknown command -> EINVAL")
request(s, 0, 8192, 4096, cookie=2)
err, c = simple_reply(s)
check(err == 0 and c == 2 and s.recv(4096, socket.MSG_WAITALL) == b"\x42" * 4096, "read after unknown cmd")
# a write whose payload is larger than the maximum is skipped and refused
request(s, 1, 0, 33 * 1024 * 1024, cookie=3, payload=b"\0" * (33 * 1024 * 1024))
check(simple_reply(s) == (75, 3), "oversized write -> EOVERFLOW")
# a write past the end: its payload is consumed, ENOSPC, the stream stays in step
request(s, 1, size, 4096, cookie=4, payload=b"\1" * 4096)
check(simple_reply(s) == (28, 4), "write past end -> ENOSPC")
request(s, 3, 0, 0, cookie=5)
check(simple_reply(s) == (0, 5), "flush after bad requests")
witness()
# structured error replies carry a message
s2 = connect()
handshake(s2, structured=True)
request(s2, 0, size, 512, cookie=9)
h = s2.recv(20, socket.MSG_WAITALL)
magic, flags, typ, cookie, length = struct.unpack(">IHHQI", h)
body = s2.recv(length, socket.MSG_WAITALL)
err, mlen = struct.unpack(">IH", body[:6])
check(magic == 0x668e33ef and typ == 0x8001 and flags & 1 and cookie == 9 and err == 22, "structured error chunk")
check(b"beyond the end" in body[6:6 + mlen], "structured error message")
s2.close()
# bad request magic: the server closes that connection only
request(s, 0, 0, 0, cookie=6)
s.sendall(b"\xde\xad\xbe\xef" * 7)
simple_reply(s)  # the valid request before the garbage is answered
s.settimeout(5)
check(s.recv(16) == b"", "connection closed after bad magic")
s.close()
witness()
# garbage during option haggling, and a client that vanishes mid-request
for junk in [b"IHAVEOPT" + struct.pack(">II", 7, 3) + b"\0\0\0", b"NOTMAGIC" * 3, b"IHAVEOPT" + struct.pack(">II", 6, 0xffffffff)]:
    s = connect()
    s.recv(18, socket.MSG_WAITALL)
    s.sendall(struct.pack(">I", 1) + junk)
    s.settimeout(5)
    try:
        data = s.recv(4096)
    except socket.timeout:
        data = b"timeout"
    except ConnectionResetError:
        data = b""  # closed
    check(data != b"timeout", "server answered or closed on junk %r" % junk[:12])
    s.close()
    witness()
s = connect()
handshake(s)
request(s, 1, 0, 65536, cookie=1, payload=b"\3" * 1000)  # payload cut short
s.close()
witness()
# many option requests with bad lengths: refused, the connection stays usable
s = connect()
s.recv(18, socket.MSG_WAITALL)
s.sendall(struct.pack(">I", 1))
s.sendall(b"IHAVEOPT" + struct.pack(">II", 6, 2) + b"\0\5")  # INFO with a truncated name
h = s.recv(20, socket.MSG_WAITALL)
_, _, rtype, rlen = struct.unpack(">QIII", h)
s.recv(rlen, socket.MSG_WAITALL)
check(rtype == 0x80000003, "malformed INFO -> ERR_INVALID")
s.sendall(b"IHAVEOPT" + struct.pack(">II", 42, 0))
h = s.recv(20, socket.MSG_WAITALL)
_, _, rtype, rlen = struct.unpack(">QIII", h)
s.recv(rlen, socket.MSG_WAITALL)
check(rtype == 0x80000001, "unknown option -> ERR_UNSUP")
s.close()
witness()
good.shutdown()
print("ok: %d checks" % checks)
