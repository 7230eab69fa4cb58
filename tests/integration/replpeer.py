"""replpeer -- a test-side peer of the cask replica protocol, version 1
(docs/replica-protocol.md), written from the document, not from the C code,
so the tests check caskd's replica service against the spec. It plays a
controller: handshake (HELLO, AUTH with HMAC-SHA256), CREATE/ATTACH,
PREPARE, START_EPOCH, sequenced WRITE/TRIM/ZERO, FLUSH, READ, and can send
damaged frames on purpose. XXH3-128 comes from libxxhash through ctypes.
"""
import ctypes
import hmac
import hashlib
import os
import socket
import struct

_xx = ctypes.CDLL("libxxhash.so.0")


class _H128(ctypes.Structure):
    _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]


_xx.XXH3_128bits.restype = _H128
_xx.XXH3_128bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]

MAGIC = 0x50524B43
HDR = struct.Struct("<IHHIIQQQQ16s")
T = dict(HELLO=1, HELLO_REPLY=2, AUTH=3, AUTH_OK=4, ERROR=5, KEEPALIVE=6, KEEPALIVE_ACK=7, BYE=8,
         CREATE=0x10, ATTACH=0x11, STATUS_REQ=0x12, STATUS=0x13, PREPARE=0x20, PROMISE=0x21,
         START_EPOCH=0x22, EPOCH_STARTED=0x23, WRITE=0x30, TRIM=0x31, ZERO=0x32, MB_COMMIT=0x40,
         MB_ACK=0x41, APPLIED=0x50, DURABLE=0x51, FLUSH=0x52, READ=0x58, READ_DATA=0x59)
NAMES = {v: k for k, v in T.items()}
ERR = {1: "BAD_FRAME", 2: "BAD_CHECKSUM", 3: "UNKNOWN_TYPE", 4: "VERSION_MISMATCH", 5: "AUTH_REQUIRED",
       6: "AUTH_FAILED", 7: "BUSY", 8: "DUPLICATE_ID", 16: "VOLUME_NOT_FOUND", 17: "VOLUME_EXISTS",
       18: "POOL_NOT_FOUND", 19: "NOT_A_REPLICA", 20: "WRONG_VOLUME", 21: "NO_SPACE",
       22: "INVALID_ARGUMENT", 23: "INVALID_RANGE", 24: "IO_ERROR", 25: "POOL_SUSPENDED",
       26: "REPLICA_SYNC_DISABLED", 32: "STALE_EPOCH", 33: "NOT_PROMISED", 34: "PROMISED_ELSEWHERE",
       35: "NOT_SESSION", 36: "EPOCH_REFUSED", 37: "SEQUENCE_GAP", 38: "SEQUENCE_DUP", 39: "LAGGING",
       40: "MB_STALE", 41: "RETIRED", 63: "INTERNAL"}


def xxh3_128(b):
    h = _xx.XXH3_128bits(b, len(b))
    return struct.pack("<QQ", h.low64, h.high64)


def frame(ftype, payload=b"", flags=0, epoch=(0, 0), seq=0, fid=0, version=1):
    hdr = HDR.pack(MAGIC, version, ftype, flags, len(payload), epoch[0], epoch[1], seq, fid, b"\0" * 16)
    ck = xxh3_128(hdr + payload)
    return hdr[:48] + ck + payload


class PeerError(Exception):
    def __init__(self, code, msg, fields):
        self.code, self.msg, self.fields = code, msg, fields
        super().__init__("%s: %s" % (code, msg))


def parse_status(p):
    f = struct.unpack_from("<16sQQQQQQQQQIIQII", p, 0)
    st = dict(uuid=f[0], id=f[1], pool_guid=f[2], promised=(f[3], f[4]), last_epoch=(f[5], f[6]),
              applied=f[7], durable=f[8], hi=f[9], state=f[10], flags=f[11], size=f[12], bs=f[13])
    st["holder"] = p[120:184].split(b"\0")[0].decode()
    st["mb_version"] = struct.unpack_from("<Q", p, 256)[0]
    n = p[256 + 33]
    st["members"] = []
    for i in range(n):
        o = 256 + 320 + 192 * i
        mid, pg, state, reason = struct.unpack_from("<QQBB", p, o)
        st["members"].append(dict(id=mid, pool_guid=pg, state=state, reason=reason,
                                  pool=p[o + 104:o + 168].split(b"\0")[0].decode()))
    return st


def membership(epoch, version, members, level=2, name="db"):
    """mb_phys (on-disk-format.md 7.3): members = [(id, pool_guid, addr, pool)], all in-sync."""
    b = bytearray(1280)
    struct.pack_into("<QQQQBBBBIII", b, 0, version, epoch[0], epoch[1], 0, level, len(members), 0, 0,
                     5000, 600, 0)
    b[64:64 + len(name)] = name.encode()
    for i, (mid, pg, addr, pool) in enumerate(members):
        o = 320 + 192 * i
        struct.pack_into("<QQBBHIQQ", b, o, mid, pg, 1, 0, 0, 0, 0, 0)
        b[o + 40:o + 40 + len(addr)] = addr.encode()
        b[o + 104:o + 104 + len(pool)] = pool.encode()
    return bytes(b)


class Peer:
    def __init__(self, addr, key=None, insecure=False, versions=(1, 1), instance=None):
        host, port = addr.rsplit(":", 1)
        self.s = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.key, self.insecure, self.versions = key, insecure, versions
        self.instance = instance if instance is not None else struct.unpack("<Q", os.urandom(8))[0] | 1
        self.epoch = (0, 0)
        self.fid = 0
        self.version = 1

    def close(self):
        self.s.close()

    def send_raw(self, b):
        self.s.sendall(b)

    def send(self, ftype, payload=b"", flags=0, seq=0, epoch=None):
        self.fid += 1
        self.s.sendall(frame(ftype, payload, flags, epoch or self.epoch, seq, self.fid, self.version))
        return self.fid

    def _read(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise EOFError("connection closed")
            b += c
        return b

    def recv(self):
        h = self._read(64)
        magic, ver, ftype, flags, ln, ec, en, seq, fid, ck = HDR.unpack(h)
        assert magic == MAGIC, hex(magic)
        p = self._read(ln)
        assert xxh3_128(h[:48] + b"\0" * 16 + p) == ck, "bad checksum from caskd"
        return dict(type=NAMES.get(ftype, ftype), flags=flags, epoch=(ec, en), seq=seq, id=fid, payload=p)

    def expect(self, want):
        """Next frame that is not APPLIED/DURABLE noise unless wanted; an ERROR raises PeerError."""
        while True:
            f = self.recv()
            if f["type"] == "ERROR":
                code, _, _, _, ec, en, val, fatal = struct.unpack_from("<IIQQQQQB", f["payload"], 0)
                msg = f["payload"][120:].split(b"\0")[0].decode(errors="replace")
                addr = f["payload"][56:120].split(b"\0")[0].decode()
                raise PeerError(ERR.get(code, code), msg, dict(epoch=(ec, en), value=val, fatal=fatal,
                                                                addr=addr))
            if f["type"] == want:
                return f
            if f["type"] in ("APPLIED", "DURABLE"):
                self.last_applied = f["seq"] if f["type"] == "APPLIED" else getattr(self, "last_applied", 0)
                continue
            raise AssertionError("got %s, wanted %s" % (f["type"], want))

    def handshake(self, advertise="test:1"):
        flags = (1 if self.key else 0) | (2 if self.insecure else 0)
        nonce_c = os.urandom(32)
        he = struct.pack("<16sHHIQQ32s64s64s56s", b"cask-replica", self.versions[0], self.versions[1],
                         flags, 0, self.instance, nonce_c, b"replpeer.py", advertise.encode(), b"")
        self.send(T["HELLO"], he)
        r = self.expect("HELLO_REPLY")["payload"]
        ver, vmin, vmax, _, rflags, _, feat, inst_r, nonce_r = struct.unpack_from("<HHHHIIQQ32s", r, 0)
        self.version = ver
        mac_c = b"\0" * 32
        if self.key:
            msg = b"cask-rp1 controller" + nonce_c + nonce_r + struct.pack("<QQH", self.instance, inst_r, ver)
            mac_c = hmac.new(self.key, msg, hashlib.sha256).digest()
        self.send(T["AUTH"], mac_c + b"\0" * 32)
        ok = self.expect("AUTH_OK")["payload"]
        if self.key:
            msg = b"cask-rp1 replica" + nonce_r + nonce_c + struct.pack("<QQH", inst_r, self.instance, ver)
            assert hmac.compare_digest(ok[:32], hmac.new(self.key, msg, hashlib.sha256).digest()), \
                "the replica did not prove it holds the key"
        return ver

    def create(self, pool, name, size, epoch, uuid, holder="test:1", bs=4096):
        p = struct.pack("<16sQIBBBB64s256sQQ64s80s", uuid, size, bs, 0xff, 0xff, 0, 0, pool.encode(),
                        name.encode(), epoch[0], epoch[1], holder.encode(), b"")
        self.epoch = epoch
        self.send(T["CREATE"], p)
        return parse_status(self.expect("STATUS")["payload"])

    def attach(self, pool, name, uuid):
        p = struct.pack("<16s64s256sI44s", uuid, pool.encode(), name.encode(), 0, b"")
        self.send(T["ATTACH"], p)
        st = parse_status(self.expect("STATUS")["payload"])
        self.epoch = st["promised"]
        return st

    def prepare(self, epoch, mode=2, expect=(0, 0), addr="test:1"):
        self.epoch = epoch
        self.send(T["PREPARE"], struct.pack("<IIQQ64s40s", mode, 0, expect[0], expect[1], addr.encode(), b""))
        return parse_status(self.expect("PROMISE")["payload"])

    def start_epoch(self, base, mb):
        self.send(T["START_EPOCH"], mb + struct.pack("<I12s", 0, b""), seq=base)
        return parse_status(self.expect("EPOCH_STARTED")["payload"])

    def write(self, seq, off, data, fua=False):
        return self.send(T["WRITE"], struct.pack("<QII", off, len(data), 0) + data, flags=1 if fua else 0, seq=seq)

    def trim(self, seq, off, ln):
        return self.send(T["TRIM"], struct.pack("<QQ", off, ln), seq=seq)

    def flush(self, upto):
        fid = self.send(T["FLUSH"], seq=upto)
        while True:
            f = self.expect("DURABLE")
            if f["id"] == fid:
                return f["seq"]

    def wait_applied(self, seq):
        while getattr(self, "last_applied", 0) < seq:
            f = self.expect("APPLIED")
            self.last_applied = f["seq"]
        return self.last_applied

    def read(self, off, ln, min_seq=0):
        fid = self.send(T["READ"], struct.pack("<QIIQ", off, ln, 0, min_seq))
        f = self.expect("READ_DATA")
        assert f["id"] == fid
        return f["payload"][16:]

    def status(self):
        self.send(T["STATUS_REQ"])
        return parse_status(self.expect("STATUS")["payload"])
