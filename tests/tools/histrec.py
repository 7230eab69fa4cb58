#!/usr/bin/python3
"""histrec.py -- record block-device histories from python3-libnbd clients,
in the format tests/tools/histcheck.py checks.

    import histrec
    rec = histrec.Recorder(path, bs=4096)     # appends JSON Lines (O_APPEND:
                                              # several processes may share it)
    c = rec.client(1, "nbd://127.0.0.1:10809/tank/v")   # client number 1..65535
    c.write(block, nblocks=1, fua=False)  -> True (answered), False (failed)
    c.read(block, nblocks=1)              -> list of per-block values, or None
    c.flush() / c.trim(block, n) / c.zero(block, n)     -> True / False
    c.random_op(rnd, nblocks)                 # the tests' mix on blocks 0..nblocks-1 (rnd: a
                                              # random.Random): 55% writes (10% of them FUA), 35%
                                              # reads, 10% flushes
    c.close()
    a = rec.aio_client(2, uri)                # several requests in flight:
    a.aio_write(block, 1); a.aio_flush(); a.poll(100); a.drain()   # see AioClient
    rec.event("crash")                        # after the kill took effect
    rec.close()

Every write fills each 512-byte sector with a tag: magic, the op id
(client << 40 | counter, unique in the history), block number, sector
index, filler derived from them and a CRC32 of the sector. A read decodes
every sector: all zeros is value 0, a valid tag for that block and sector
is the op id that wrote it, anything else is null (bytes nobody wrote);
a block whose sectors differ is recorded as the list of sector values.

Outcomes: an answered request is `ok`; an nbd.Error on a request that was
sent is `info` (a write may have happened); once a connection has failed,
every later call raises ClientDead without recording anything (nothing
was sent). `ts` is time.monotonic_ns() (CLOCK_MONOTONIC, shared by the
processes of one host), taken just before the request and just after its
answer.

As a command:  histrec.py read-all URI HISTORY CLIENT NBLOCKS [FIRST]
records reads of blocks FIRST..FIRST+NBLOCKS-1 (256 blocks per request).
A history assumes its blocks were zeros at its start: zero (and flush) the
range before recording into it.
"""
import json
import os
import struct
import sys
import threading
import time
import zlib

SECTOR = 512
MAGIC = 0x4741545354534948    # "HISTSTAG" little-endian
_HEAD = struct.Struct("<QQQI")  # magic, op id, block, sector
_FILL = (SECTOR - _HEAD.size - 4) // 16


class ClientDead(Exception):
    pass


def sector_tag(opid, block, sec):
    head = _HEAD.pack(MAGIC, opid, block, sec)
    body = head + struct.pack("<QQ", opid ^ 0x5a5a5a5a5a5a5a5a, block * 64 + sec) * _FILL
    body += bytes(SECTOR - 4 - len(body))
    return body + struct.pack("<I", zlib.crc32(body))


def block_data(opid, block, bs):
    return b"".join(sector_tag(opid, block, s) for s in range(bs // SECTOR))


_ZERO = bytes(SECTOR)


def decode_block(buf, block):
    """The value of one block's bytes: 0, an op id, None, or a list per sector."""
    vals = []
    for s in range(len(buf) // SECTOR):
        sec = buf[s * SECTOR:(s + 1) * SECTOR]
        if sec == _ZERO:
            vals.append(0)
            continue
        magic, opid, blk, idx = _HEAD.unpack_from(sec)
        if (magic != MAGIC or blk != block or idx != s
                or struct.unpack_from("<I", sec, SECTOR - 4)[0] != zlib.crc32(sec[:SECTOR - 4])
                or sec != sector_tag(opid, block, s)):
            vals.append(None)
        else:
            vals.append(opid)
    first = vals[0]
    for v in vals:
        if v != first:
            return vals
    return first


class Recorder:
    def __init__(self, path, bs=4096, multi_conn=True):
        self.path = path
        self.bs = bs
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if os.fstat(self.fd).st_size == 0:
            self._emit({"type": "header", "bs": bs, "multi_conn": multi_conn})

    def _emit(self, ev):
        os.write(self.fd, (json.dumps(ev, separators=(",", ":")) + "\n").encode())

    def event(self, what, **kw):
        ev = {"type": "event", "what": what, "ts": time.monotonic_ns()}
        ev.update(kw)
        self._emit(ev)

    def client(self, cid, uri):
        return Client(self, cid, uri)

    def aio_client(self, cid, uri):
        return AioClient(self, cid, uri)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Client:
    """One NBD connection whose every request is recorded. Not thread-safe:
    use one Client per thread."""

    def __init__(self, rec, cid, uri):
        import nbd
        self.nbd = nbd
        self.rec = rec
        self.cid = cid
        if not 0 < cid < 1 << 16:
            raise ValueError("client number 1..65535")
        self.counter = 0
        self.dead = False
        self.lock = threading.Lock()
        self.h = nbd.NBD()
        self.h.connect_uri(uri)
        self.size = self.h.get_size()

    def _id(self):
        self.counter += 1
        return (self.cid << 40) | self.counter

    def _run(self, ev, call):
        if self.dead:
            raise ClientDead("connection of client %d failed earlier" % self.cid)
        ev["ts"] = time.monotonic_ns()
        self.rec._emit(ev)
        try:
            r = call()
        except self.nbd.Error as e:
            t = time.monotonic_ns()
            self.dead = self.dead or not self._alive()
            self.rec._emit({"type": "info", "id": ev["id"], "ts": t, "err": str(e)[:200]})
            return False, None
        return True, r

    def _alive(self):
        try:
            return not (self.h.aio_is_dead() or self.h.aio_is_closed())
        except self.nbd.Error:
            return False

    def write(self, block, nblocks=1, fua=False):
        bs = self.rec.bs
        opid = self._id()
        buf = b"".join(block_data(opid, block + i, bs) for i in range(nblocks))
        ev = {"type": "invoke", "id": opid, "client": self.cid, "op": "write",
              "off": block * bs, "len": nblocks * bs, "fua": fua}
        flags = self.nbd.CMD_FLAG_FUA if fua else 0
        ok, _ = self._run(ev, lambda: self.h.pwrite(buf, block * bs, flags))
        if ok:
            self.rec._emit({"type": "ok", "id": opid, "ts": time.monotonic_ns()})
        return ok

    def read(self, block, nblocks=1):
        bs = self.rec.bs
        opid = self._id()
        ev = {"type": "invoke", "id": opid, "client": self.cid, "op": "read",
              "off": block * bs, "len": nblocks * bs}
        ok, buf = self._run(ev, lambda: self.h.pread(nblocks * bs, block * bs))
        if not ok:
            return None
        t = time.monotonic_ns()
        vs = [decode_block(buf[i * bs:(i + 1) * bs], block + i) for i in range(nblocks)]
        self.rec._emit({"type": "ok", "id": opid, "ts": t, "vs": vs})
        return vs

    def _simple(self, op, call, block=0, nblocks=0):
        bs = self.rec.bs
        opid = self._id()
        ev = {"type": "invoke", "id": opid, "client": self.cid, "op": op,
              "off": block * bs, "len": nblocks * bs}
        ok, _ = self._run(ev, call)
        if ok:
            self.rec._emit({"type": "ok", "id": opid, "ts": time.monotonic_ns()})
        return ok

    def flush(self):
        return self._simple("flush", lambda: self.h.flush())

    def trim(self, block, nblocks=1):
        bs = self.rec.bs
        return self._simple("trim", lambda: self.h.trim(nblocks * bs, block * bs), block, nblocks)

    def zero(self, block, nblocks=1):
        bs = self.rec.bs
        return self._simple("zero", lambda: self.h.zero(nblocks * bs, block * bs), block, nblocks)

    def random_op(self, rnd, nblocks):
        r, blk = rnd.random(), rnd.randrange(nblocks)
        if r < 0.55:
            self.write(blk, 1, fua=rnd.random() < 0.1)
        elif r < 0.9:
            self.read(blk, 1)
        else:
            self.flush()

    def close(self):
        try:
            if not self.dead:
                self.h.shutdown()
        except self.nbd.Error:
            pass
        del self.h               # libnbd closes the handle when it is freed


class AioClient(Client):
    """One NBD connection with several requests in flight (libnbd aio):

        c = rec.aio_client(7, uri)
        c.aio_write(block, n, fua) / c.aio_read(block, n) / c.aio_flush()
        c.aio_trim(block, n) / c.aio_zero(block, n)
        c.poll(ms)        reap what completed (records ok, or info on error)
        c.drain(seconds)  wait until nothing is in flight (False on timeout)
        c.in_flight       requests sent and not answered

    The invoke is recorded before the request is queued and the answer when
    poll() sees it, so every recorded interval contains the true one."""

    def __init__(self, rec, cid, uri):
        super().__init__(rec, cid, uri)
        self.inflight = {}

    @property
    def in_flight(self):
        return len(self.inflight)

    def _submit(self, ev, submit, buf=None):
        if self.dead:
            raise ClientDead("connection of client %d failed earlier" % self.cid)
        ev["ts"] = time.monotonic_ns()
        self.rec._emit(ev)
        try:
            cookie = submit()
        except self.nbd.Error as e:
            self.dead = self.dead or not self._alive()
            self.rec._emit({"type": "info", "id": ev["id"], "ts": time.monotonic_ns(),
                            "err": str(e)[:200]})
            return False
        self.inflight[cookie] = (ev, buf)
        return True

    def aio_write(self, block, nblocks=1, fua=False):
        bs = self.rec.bs
        opid = self._id()
        data = bytearray(b"".join(block_data(opid, block + i, bs) for i in range(nblocks)))
        buf = self.nbd.Buffer.from_bytearray(data)
        ev = {"type": "invoke", "id": opid, "client": self.cid, "op": "write",
              "off": block * bs, "len": nblocks * bs, "fua": fua}
        flags = self.nbd.CMD_FLAG_FUA if fua else 0
        return self._submit(ev, lambda: self.h.aio_pwrite(buf, block * bs, flags=flags), buf)

    def aio_read(self, block, nblocks=1):
        bs = self.rec.bs
        opid = self._id()
        buf = self.nbd.Buffer(nblocks * bs)
        ev = {"type": "invoke", "id": opid, "client": self.cid, "op": "read",
              "off": block * bs, "len": nblocks * bs}
        return self._submit(ev, lambda: self.h.aio_pread(buf, block * bs), buf)

    def _aio_simple(self, op, submit, block=0, nblocks=0):
        bs = self.rec.bs
        ev = {"type": "invoke", "id": self._id(), "client": self.cid, "op": op,
              "off": block * bs, "len": nblocks * bs}
        return self._submit(ev, submit)

    def aio_flush(self):
        return self._aio_simple("flush", lambda: self.h.aio_flush())

    def aio_trim(self, block, nblocks=1):
        bs = self.rec.bs
        return self._aio_simple("trim", lambda: self.h.aio_trim(nblocks * bs, block * bs),
                                block, nblocks)

    def aio_zero(self, block, nblocks=1):
        bs = self.rec.bs
        return self._aio_simple("zero", lambda: self.h.aio_zero(nblocks * bs, block * bs),
                                block, nblocks)

    def poll(self, timeout_ms=100):
        """Wait up to timeout_ms for the connection, then record what completed;
        returns how many requests completed (answered or failed)."""
        if self.inflight:
            try:
                self.h.poll(timeout_ms)
            except self.nbd.Error:
                self.dead = True
        n = 0
        bs = self.rec.bs
        for cookie in list(self.inflight):
            ev, buf = self.inflight[cookie]
            try:
                done = self.h.aio_command_completed(cookie)
            except self.nbd.Error as e:
                self.dead = self.dead or not self._alive()
                self.rec._emit({"type": "info", "id": ev["id"], "ts": time.monotonic_ns(),
                                "err": str(e)[:200]})
                del self.inflight[cookie]
                n += 1
                continue
            if not done:
                continue
            t = time.monotonic_ns()
            out = {"type": "ok", "id": ev["id"], "ts": t}
            if ev["op"] == "read":
                data = bytes(buf.to_bytearray())
                b0 = ev["off"] // bs
                out["vs"] = [decode_block(data[i * bs:(i + 1) * bs], b0 + i)
                             for i in range(ev["len"] // bs)]
            self.rec._emit(out)
            del self.inflight[cookie]
            n += 1
        if self.dead and self.inflight:
            for cookie, (ev, _) in list(self.inflight.items()):
                self.rec._emit({"type": "info", "id": ev["id"], "ts": time.monotonic_ns(),
                                "err": "connection lost"})
            self.inflight.clear()
        return n

    def drain(self, seconds=60):
        end = time.monotonic() + seconds
        while self.inflight:
            if time.monotonic() > end:
                return False
            self.poll(100)
        return True

    def close(self):
        self.drain(10)
        super().close()


def read_all(uri, path, cid, nblocks, first=0, step=256):
    """Record reads of blocks first..first+nblocks-1, step blocks a request."""
    rec = Recorder(path)
    c = rec.client(cid, uri)
    for b in range(first, first + nblocks, step):
        if c.read(b, min(step, first + nblocks - b)) is None:
            sys.exit("read of blocks %d.. failed" % b)
    c.close()
    rec.close()


if __name__ == "__main__":
    if len(sys.argv) in (6, 7) and sys.argv[1] == "read-all":
        read_all(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
                 int(sys.argv[6]) if len(sys.argv) == 7 else 0)
    else:
        sys.exit(__doc__)
