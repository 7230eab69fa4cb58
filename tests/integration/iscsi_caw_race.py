#!/usr/bin/python3
"""iscsi_caw_race.py NBD_URI ISCSI_PORT TARGET -- COMPARE AND WRITE is atomic against every
writer of the volume (docs/design-vio.md §9, docs/iscsi.md §11.6).

One range of the volume (RANGE_BLOCKS 512-byte blocks) is raced by
  * NBD_WRITERS libnbd connections, each looping: write a new unique state over the whole
    range, read it back through NBD;
  * CAW_SESSIONS iSCSI sessions to the same LU (the second path of multipath), each looping:
    READ the range, then COMPARE AND WRITE (what it read -> a new unique state).
A state is a 16-byte tag (kind, writer, sequence) repeated over the whole range, so every
state is unique and a torn range is visible. Every operation's real-time interval is
recorded (monotonic clock, one process: used to order events, never to judge speed). Checks:
  1. every read (NBD or iSCSI) returns one whole state that some writer wrote (or the zeros
     the range starts with), never a mixture;
  2. a state is the compare image of at most one successful CAW;
  3. no lost update: after NBD writer w's write X completed, its read-back sees state V;
     V's history -- V, the state V's CAW compared against, and so on back to an NBD write --
     must reach X, or end at an NBD write that did not complete before X began. A CAW that
     compared against an old state while X landed between its read and its write (the
     non-atomic read-compare-write) breaks this: V's history skips X and reaches a state
     that was overwritten by X.
  4. each CAW session saw GOODs and miscompares (the race happened), and a miscompare
     carries sense 0E/1D/00 with the offset of the first differing byte.
Exit 0 when all hold; prints the counts."""
import random
import socket
import struct
import sys
import threading
import time

import nbd
import iscsi_proto as ip

URI, ip.PORT, ip.TARGET = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ip.HOST = "127.0.0.1"
BS = 512
LBA = 2048                 # byte offset 1 MiB
RANGE_BLOCKS = 16          # 8 KiB: two 4 KiB volume blocks
LEN = RANGE_BLOCKS * BS
NBD_WRITERS = 3
CAW_SESSIONS = 2
WANT_GOOD = 300            # CAW GOODs per session
MAX_ATTEMPTS = 20000       # per session; the race is paced so that GOODs are common

lock = threading.Lock()
ops = {}                   # state tag -> (kind, start_ns, end_ns, compared_tag or None)
caw_of = {}                # compared tag -> the CAW GOOD's new tag (check 2)
readbacks = []             # (writer's tag X, X's start, seen tag V)
errors = []
ZERO = ("zero", 0, 0)
stop = threading.Event()


def state(kind, who, seq):
    unit = struct.pack("<4sIQ", kind, who, seq)
    return (kind.decode(), who, seq), unit * (LEN // 16)


def parse(buf, where):
    if buf == bytes(LEN):
        return ZERO
    unit = buf[:16]
    if buf != unit * (LEN // 16):
        raise AssertionError("%s: torn range (not one state): first units %r %r" %
                             (where, buf[:16].hex(), buf[LEN - 16:].hex()))
    kind, who, seq = struct.unpack("<4sIQ", unit)
    return (kind.decode(), who, seq)


def nbd_writer(w):
    h = nbd.NBD()
    h.connect_uri(URI)
    seq = 0
    rnd = random.Random(w)
    try:
        while not stop.is_set():
            seq += 1
            tag, data = state(b"nbdw", w, seq)
            t0 = time.monotonic_ns()
            h.pwrite(data, LBA * BS)
            t1 = time.monotonic_ns()
            with lock:
                ops[tag] = ("nbd", t0, t1, None)
            got = parse(h.pread(LEN, LBA * BS), "NBD read")
            with lock:
                readbacks.append((tag, t0, got))
            time.sleep(rnd.random() * 0.002)  # pacing only: lets CAWs win sometimes
    except Exception as e:  # noqa: BLE001
        errors.append("NBD writer %d: %r" % (w, e))
        stop.set()
    finally:
        h.shutdown()


def caw_cdb(n):
    return struct.pack(">BBQ3xBBB", 0x89, 0, LBA, n, 0, 0)


def sense_fields(got):
    b = got[2:]
    if len(b) >= 14 and (b[0] & 0x7F) in (0x70, 0x71):
        info = struct.unpack(">I", b[3:7])[0] if b[0] & 0x80 else None
        return b[2] & 0x0F, b[12], b[13], info
    if len(b) >= 8 and (b[0] & 0x7F) in (0x72, 0x73):
        info = None
        i = 8
        while i + 1 < len(b):
            if b[i] == 0 and i + 12 <= len(b):
                info = struct.unpack(">Q", b[i + 4:i + 12])[0]
            i += 2 + b[i + 1]
        return b[1] & 0x0F, b[2], b[3], info
    return None, None, None, None


def caw_session(sid, result):
    s = ip.Sess(initiator="iqn.2026-12.io.cask.test:caw-%d" % sid)
    s.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no delayed-ACK stall per PDU
    s.login()
    good = miscompare = attempts = 0
    seq = 0

    def cmd(cdb, edtl, data=None, read=False):
        for _ in range(4):  # the unit attention of a new nexus comes once
            st, got = s.cmd(cdb, edtl, data, read)
            if st == 2 and len(got) >= 16 and sense_fields(got)[0] == 6:
                continue
            return st, got
        return st, got

    try:
        while good < WANT_GOOD and attempts < MAX_ATTEMPTS and not stop.is_set():
            attempts += 1
            st, cur = cmd(ip.rd10(LBA, RANGE_BLOCKS), LEN, read=True)
            assert st == 0 and len(cur) == LEN, "READ(10): status %d" % st
            old = parse(cur, "iSCSI read")
            seq += 1
            tag, new = state(b"caw.", sid, seq)
            t0 = time.monotonic_ns()
            st, got = cmd(caw_cdb(RANGE_BLOCKS), 2 * LEN, cur + new)
            t1 = time.monotonic_ns()
            if st == 0:
                good += 1
                with lock:
                    ops[tag] = ("caw", t0, t1, old)
                    if old in caw_of:
                        raise AssertionError("state %r was the compare image of two GOOD CAWs (%r, %r)" %
                                             (old, caw_of[old], tag))
                    caw_of[old] = tag
            elif st == 2:
                key, asc, ascq, info = sense_fields(got)
                assert (key, asc, ascq) == (0xE, 0x1D, 0x00), "CAW: sense %r/%r/%r" % (key, asc, ascq)
                # the range holds one other whole state, whose tag differs from ours in the
                # first unit: the first differing byte is inside the first 16
                assert info is not None and info < 16, "miscompare INFORMATION %r" % (info,)
                miscompare += 1
            else:
                raise AssertionError("CAW: status %d" % st)
            if attempts % 500 == 0:
                print("CAW session %d: %d GOOD, %d MISCOMPARE" % (sid, good, miscompare), file=sys.stderr)
    except Exception as e:  # noqa: BLE001
        errors.append("CAW session %d: %r" % (sid, e))
        stop.set()
    result[sid] = (good, miscompare, attempts)


def main():
    res = {}
    cs = [threading.Thread(target=caw_session, args=(i, res)) for i in range(CAW_SESSIONS)]
    ws = [threading.Thread(target=nbd_writer, args=(i,)) for i in range(NBD_WRITERS)]
    for t in ws + cs:
        t.start()
    for t in cs:
        t.join()
    stop.set()
    for t in ws:
        t.join()
    for e in errors:
        print("FAIL", e)
    if errors:
        return 1
    # check 3: no lost NBD write
    lost = 0
    for x, x_start, v in readbacks:
        cur, hops = v, 0
        while cur != x:
            if cur == ZERO:
                lost += 1
                print("FAIL lost update: %r read back the initial zeros" % (x,))
                break
            kind, s0, s1, compared = ops[cur]
            if s1 < x_start:
                lost += 1
                print("FAIL lost update: after %r, read back %r whose history holds %r (%s, completed "
                      "before %r began)" % (x, v, cur, kind, x))
                break
            if kind == "nbd":
                break  # another writer's write, not before X: it may have overwritten X
            cur = compared
            hops += 1
    total_good = sum(r[0] for r in res.values())
    for sid, (g, m, a) in sorted(res.items()):
        print("CAW session %d: %d GOOD, %d MISCOMPARE of %d" % (sid, g, m, a))
    nw = sum(1 for o in ops.values() if o[0] == "nbd")
    print("NBD writes %d, read-backs checked %d, lost updates %d" % (nw, len(readbacks), lost))
    bad = lost > 0
    for sid, (g, m, a) in res.items():
        if g < WANT_GOOD or m == 0:
            print("FAIL session %d did not race (GOOD %d, MISCOMPARE %d)" % (sid, g, m))
            bad = True
    if nw < 100:
        print("FAIL only %d NBD writes raced the CAWs" % nw)
        bad = True
    return 1 if bad or total_good == 0 else 0


sys.exit(main())
