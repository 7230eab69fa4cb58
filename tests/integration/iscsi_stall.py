#!/usr/bin/python3
"""iscsi_stall.py PORT SOCK LOG MODE -- the stall bound (docs/iscsi.md 9.3) with cask's own
initiator against a caskd started with --iscsi-stall-ms 300 --test-ops; requests are held in the
volume IO stack by test.vio_fault (stall, delay; `pinned`: the request counts as begun by the
backend, so it cannot be withdrawn). Each case waits for conditions (the fault layer's counters,
caskd's log lines), never for a time. MODE "stall": the bound; MODE "workers": a request
withdrawn from the worker queue (caskd with --io-threads 1); MODE "immediate": the bound on
immediate commands (caskd with --iscsi-stall-ms 0)."""
import struct
import sys
import time

import iscsi_proto as ip
from viohelp import Ctl

ip.HOST, ip.PORT, ip.TARGET = "127.0.0.1", int(sys.argv[1]), "iqn.2026-12.io.cask:tank.v"
ctl = Ctl(sys.argv[2])
LOG, MODE = sys.argv[3], sys.argv[4]
GOOD, BUSY, TSF = 0x00, 0x08, 0x28
NAMES = {GOOD: "GOOD", BUSY: "BUSY", TSF: "TASK SET FULL", 0x02: "CHECK CONDITION"}


def fault(**kw):
    return ctl.call("test.vio_fault", name="tank/v", **kw)


def until(cond, what, limit=120):
    """poll cond() until true; the limit only stops a hung test, it is not a timing assertion"""
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            sys.exit("FAIL: gave up waiting for " + what)
        time.sleep(0.02)


def logged(text):
    with open(LOG, errors="replace") as f:
        return text in f.read()


def session():
    s = ip.Sess()
    s.s.settimeout(60)
    s.login()
    for _ in range(3):  # the power-on unit attention
        st, _ = s.cmd(bytes(6), 0)
        if st == 0:
            break
    return s


def send(s, itt, cdb, edtl=0, data=None, read=False, immediate=False, out=None):
    """send one SCSI Command PDU; with out (a list) only build it, for one sendall of several:
    loopback then delivers them together and caskd reads both before the stall bound's tick"""
    bhs = bytearray(48)
    bhs[0] = 0x01 | (0x40 if immediate else 0)
    bhs[1] = 0x80 | (0x20 if data is not None else 0) | (0x40 if read else 0) | 1
    struct.pack_into(">III", bhs, 16, itt, edtl, s.cmdsn)
    if not immediate:
        s.cmdsn += 1
    bhs[32:32 + len(cdb)] = cdb
    if out is not None:
        out.append(s.pdu(bhs, data or b""))
    else:
        s.send_pdu(bhs, data or b"")


def write10(s, itt, lba, byte, immediate=False, out=None):
    send(s, itt, bytes([0x2A, 0, 0, 0, 0, lba, 0, 0, 1, 0]), 512, bytes([byte]) * 512, immediate=immediate, out=out)


def read10(s, itt, lba, n=1, immediate=False):
    send(s, itt, bytes([0x28, 0, 0, 0, 0, lba, 0, 0, n, 0]), 512 * n, read=True, immediate=immediate)


def answer(s):
    """the next command answer: (ITT, status, Data-In bytes); NOP-Ins are returned as (None, ITT, b"")"""
    data = b""
    while True:
        r, d = s.recv_pdu()
        op = r[0] & 0x3F
        itt = struct.unpack(">I", r[16:20])[0]
        if op == 0x20:
            return None, itt, b""
        if op == 0x25:
            data += d
            if r[1] & 0x01:
                return itt, r[3], data
            continue
        assert op == 0x21, "opcode 0x%x" % op
        return itt, r[3], data


def expect(s, itt, status, what):
    got = answer(s)
    assert got[0] == itt and got[1] == status, "%s: got ITT %s status %s, want ITT %d %s" % (
        what, got[0], NAMES.get(got[1], got[1]), itt, NAMES[status])
    return got[2]


def nop(s, itt):
    o = bytearray(48)
    o[0] = 0x40
    o[1] = 0x80
    struct.pack_into(">III", o, 16, itt, 0xFFFFFFFF, s.cmdsn)
    s.send_pdu(o)


def read_back(s, lba, n=1):
    st, got = s.cmd(bytes([0x28, 0, 0, 0, 0, lba, 0, 0, n, 0]), 512 * n, read=True)
    assert st == 0, "read back: status 0x%x" % st
    return got


def detached():
    """the session listing's count of answered tasks whose completion is still due"""
    return sum(x["detached"] for x in ctl.call("iscsi.sessions")["sessions"])


def held(n):
    return lambda: fault(action="status")["held"] >= n


if MODE == "workers":
    # caskd with --io-threads 1: session A's SYNCHRONIZE CACHE delayed (pinned) in the fault layer
    # keeps the one worker asleep; session B's FUA WRITE waits in the worker queue. At B's bound
    # the write is withdrawn from the worker queue: BUSY (B has no other task), and it never
    # lands. A's flush (it changes nothing) is answered at its own bound, BUSY.
    a, b = session(), session()
    write10(b, 400, 9, 0x12)
    expect(b, 400, GOOD, "the first write")
    fault(action="delay", ops=["flush"], delay_us=5000000, pinned=True)
    send(a, 401, bytes([0x35] + [0] * 9))
    until(lambda: fault(action="status")["delaying"] == 1, "the delayed flush")
    send(b, 402, bytes([0x2A, 0x08, 0, 0, 0, 9, 0, 0, 1, 0]), 512, b"\x34" * 512)  # FUA
    expect(b, 402, BUSY, "a FUA write queued for the only worker")
    expect(a, 401, BUSY, "the delayed flush")
    assert fault(action="status")["withdrawn"] == 0, "the fault layer withdrew something"
    until(lambda: logged("ITT 0x192 (opcode 0x2a) stalled for 300 ms: withdrawn"), "the write's log line")
    until(lambda: fault(action="status")["delaying"] == 0, "the flush's sleeper")
    fault(action="clear")
    assert read_back(b, 9) == b"\x12" * 512, "the FUA write withdrawn from the worker queue landed"
    print("a FUA write queued for the only worker: withdrawn, BUSY, never written")
    sys.exit(0)

if MODE == "immediate":
    # invariant 9 of iscsi.c: 8 immediate commands live (reads held), the 9th TASK SET FULL at once
    s = session()
    fault(action="stall", ops=["read"], pinned=True)
    for i in range(8):
        read10(s, 300 + i, 10 + i, immediate=True)
    until(held(8), "8 held reads")
    read10(s, 308, 20, immediate=True)
    expect(s, 308, TSF, "the 9th immediate command")
    print("the 9th immediate command: TASK SET FULL")
    fault(action="release")
    fault(action="clear")
    got = sorted(answer(s)[:2] for _ in range(8))
    assert got == [(300 + i, GOOD) for i in range(8)], got
    read10(s, 309, 21, immediate=True)
    expect(s, 309, GOOD, "an immediate command after")
    print("the 8 held immediate reads complete; immediate commands run again")
    sys.exit(0)

s = session()
write10(s, 90, 1, 0x11)  # the data the withdrawn writes must not overwrite
expect(s, 90, GOOD, "the first write")
write10(s, 91, 2, 0x22)
expect(s, 91, GOOD, "the second write")

# 1. One write, nothing else in flight, held where it can be withdrawn: at the bound it is taken
#    back and answered BUSY (the session has no other task: SAM-5 5.3); it never lands.
fault(action="stall", ops=["write"])
write10(s, 100, 1, 0x55)
expect(s, 100, BUSY, "a single stalled write")
st = fault(action="status")
assert st["held"] == 0 and st["withdrawn"] == 1, st
fault(action="clear")
assert fault(action="release")["released"] == 0
assert read_back(s, 1) == b"\x11" * 512, "the withdrawn write landed"
write10(s, 101, 1, 0x55)  # the retry the status asks for
expect(s, 101, GOOD, "the retried write")
assert read_back(s, 1) == b"\x55" * 512
print("a single stalled write: BUSY, withdrawn, never written; the retry writes")

# 2. Two stalled writes: the first answered TASK SET FULL (the other is still in the task
#    set), the last BUSY.
fault(action="stall", ops=["write"])
both = []
write10(s, 110, 3, 0x33, out=both)
write10(s, 111, 4, 0x44, out=both)
s.s.sendall(b"".join(both))
a, b = answer(s), answer(s)
assert {a[0], b[0]} == {110, 111} and (a[1], b[1]) == (TSF, BUSY), (a, b)
assert fault(action="status")["withdrawn"] == 2
fault(action="clear")
assert read_back(s, 3, 2) == bytes(1024), "a withdrawn write landed"
print("two stalled writes: TASK SET FULL, then BUSY")

# 3. A write delayed (asleep in the fault layer) past the bound: withdrawn, BUSY; when the
#    sleeper wakes it passes nothing down.
fault(action="delay", ops=["write"], delay_us=5000000)  # far past the 300 ms bound, also on a loaded machine
write10(s, 120, 2, 0x66)
expect(s, 120, BUSY, "a delayed write")
until(lambda: fault(action="status")["delaying"] == 0, "the delayed write's sleeper")
assert fault(action="status")["withdrawn"] == 1
fault(action="clear")
assert read_back(s, 2) == b"\x22" * 512, "the withdrawn delayed write landed"
print("a delayed write: BUSY, never written")

# 4. A write the backend has begun (pinned) is waited for, not answered: NOP-Outs and INQUIRY
#    are answered, new medium commands get TASK SET FULL (the write is in the task set), and
#    the write completes GOOD when released.
fault(action="stall", ops=["write"], pinned=True)
write10(s, 130, 5, 0x77)
until(held(1), "the held write")
until(lambda: logged("ITT 0x82 (opcode 0x2a) stalled for 300 ms: nothing of it could be withdrawn"),
      "the stall bound's look at the pinned write")
nop(s, 0x5151)
got = answer(s)
assert got[:2] == (None, 0x5151), "NOP-Out behind a begun write: %r" % (got,)
read10(s, 131, 6)
expect(s, 131, TSF, "a read behind the begun write")
st, inq = s.cmd(bytes([0x12, 0, 0, 0, 96, 0]), 96, read=True)
assert st == 0 and inq[8:12] == b"CASK", "INQUIRY behind the stall: 0x%x" % st
fault(action="release")
fault(action="clear")
expect(s, 130, GOOD, "the begun write once released")
assert read_back(s, 5) == b"\x77" * 512
print("a begun write: waited for (NOP-Out, INQUIRY answered; a read TASK SET FULL), then GOOD")

# 5. A read the backend has begun is answered at once (no effect to overtake anything), BUSY:
#    the session has no other task. A new read behind it: BUSY too (the stall goes on, the
#    task set is empty). Released, its late completion is dropped, and its ITT is free again.
fault(action="stall", ops=["read"], pinned=True)
read10(s, 140, 1)
expect(s, 140, BUSY, "a begun read")
read10(s, 141, 2)
expect(s, 141, BUSY, "a read behind the answered one")
assert detached() == 1, "the answered read is not counted as detached"
fault(action="release")
fault(action="clear")
until(lambda: detached() == 0, "the detached read's late completion (dropped)")
read10(s, 140, 1, 2)  # the same ITT
data = expect(s, 140, GOOD, "the ITT of the answered read again")
assert data == b"\x55" * 512 + b"\x22" * 512, "read after the dropped completion"
nop(s, 0x5252)
got = answer(s)
assert got[:2] == (None, 0x5252), "a stray answer after the dropped read: %r" % (got,)
print("a begun read: BUSY at once, its late completion dropped")

# 5b. A read that has not begun: answered BUSY and withdrawn from the stack too.
fault(action="stall", ops=["read"])
read10(s, 142, 3)
expect(s, 142, BUSY, "a held read")
until(lambda: fault(action="status")["withdrawn"] == 1, "the held read's withdrawal")
assert fault(action="status")["held"] == 0
fault(action="clear")
print("a held read: BUSY, withdrawn")

# 5c. ABORT TASK of a held write: the task gets no answer, and at the bound what of it has not
#     begun is withdrawn, so the TMF is answered (function complete) without the backend.
fault(action="stall", ops=["write"])
cmdsn = s.cmdsn
both = []
write10(s, 145, 8, 0x88, out=both)
t = bytearray(48)
t[0] = 0x02 | 0x40
t[1] = 0x80 | 1  # ABORT TASK
struct.pack_into(">IIII", t, 16, 146, 145, s.cmdsn, 0)
struct.pack_into(">I", t, 32, cmdsn)  # RefCmdSN
both.append(s.pdu(t))
s.s.sendall(b"".join(both))
r, _ = s.recv_pdu()
assert r[0] & 0x3F == 0x22 and struct.unpack(">I", r[16:20])[0] == 146 and r[2] == 0, \
    "TMF response: opcode 0x%x response %d" % (r[0] & 0x3F, r[2])
st = fault(action="status")
assert st["withdrawn"] == 1 and st["held"] == 0, st
fault(action="clear")
nop(s, 0x5353)
got = answer(s)
assert got[:2] == (None, 0x5353), "an answer for the aborted write: %r" % (got,)
assert read_back(s, 8) == bytes(512), "the aborted write landed"
print("ABORT TASK of a held write: withdrawn at the bound, the TMF answered, nothing written")

# 6. COMPARE AND WRITE waiting for its range lock behind another session's begun write to
#    the same block: the lock wait is withdrawn, BUSY; later it runs.
s2 = session()
fault(action="stall", ops=["write"], pinned=True)
write10(s, 150, 7, 0x99)
until(held(1), "the other session's write")
caw = bytes([0x89, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0])
send(s2, 151, caw, 1024, bytes(512) + b"\xAA" * 512)
expect(s2, 151, BUSY, "COMPARE AND WRITE behind a begun write")
until(lambda: logged("ITT 0x97 (opcode 0x89) stalled for 300 ms: withdrawn"), "the lock wait's withdrawal")
fault(action="release")
fault(action="clear")
expect(s, 150, GOOD, "the begun write once released")
send(s2, 152, caw[:], 1024, b"\x99" * 512 + b"\xAA" * 512)
expect(s2, 152, GOOD, "COMPARE AND WRITE after the stall")
assert read_back(s2, 7) == b"\xAA" * 512
print("COMPARE AND WRITE behind a begun write: its lock wait withdrawn, BUSY; then it runs")

# 7. PERSISTENT RESERVE OUT is not detached: s2's PREEMPT AND ABORT against s, whose write the
#    backend has begun (pinned), changes the reservation at once and then waits for s's task.
#    Past the bound it is waited for (nothing of it can be withdrawn), never answered BUSY: the
#    fence took effect, and a retry would get RESERVATION CONFLICT. Released: GOOD; s's
#    aborted write gets no answer.


def prout(sess, itt, sa, key, sakey=0, typ=0):
    par = struct.pack(">QQ", key, sakey) + bytes(8)
    send(sess, itt, bytes([0x5F, sa, typ, 0, 0]) + struct.pack(">I", 24) + b"\0", 24, par)


prout(s, 160, 0, 0, 0xA)  # REGISTER
expect(s, 160, GOOD, "s registers")
prout(s2, 161, 0, 0, 0xB)
expect(s2, 161, GOOD, "s2 registers")
prout(s, 162, 1, 0xA, typ=1)  # RESERVE, Write Exclusive
expect(s, 162, GOOD, "s reserves")
fault(action="stall", ops=["write"], pinned=True)
write10(s, 163, 10, 0xBB)
until(held(1), "s's begun write")
prout(s2, 164, 5, 0xB, 0xA, typ=1)  # PREEMPT AND ABORT
until(lambda: logged("ITT 0xa4 (opcode 0x5f) stalled for 300 ms: nothing of it could be withdrawn"),
      "the stall bound's look at PREEMPT AND ABORT")
nop(s2, 0x5454)
got = answer(s2)
assert got[:2] == (None, 0x5454), "PREEMPT AND ABORT answered before its aborted task ended: %r" % (got,)
fault(action="release")
fault(action="clear")
expect(s2, 164, GOOD, "PREEMPT AND ABORT once the preempted write ended")
nop(s, 0x5555)
got = answer(s)
assert got[:2] == (None, 0x5555), "an answer for the write PREEMPT AND ABORT aborted: %r" % (got,)
prout(s2, 165, 3, 0xB)  # CLEAR
expect(s2, 165, GOOD, "s2 clears")
print("PREEMPT AND ABORT behind a begun write: waited for past the bound, then GOOD")

# 8. WRITE AND VERIFY (BYTCHK=1) whose write the backend has begun: waited for past the bound;
#    once the write landed its read-back runs (never withdrawn), and the answer is GOOD, not a
#    BUSY that would hide a write that took effect.
for _ in range(3):  # the unit attentions case 7 left for s (registration preempted, cleared)
    if s.cmd(bytes(6), 0)[0] == GOOD:
        break
fault(action="stall", ops=["write"], pinned=True)
send(s, 170, bytes([0x2E, 0x02, 0, 0, 0, 11, 0, 0, 1, 0]), 512, b"\xCC" * 512)
until(held(1), "the WRITE AND VERIFY's begun write")
until(lambda: logged("ITT 0xaa (opcode 0x2e) stalled for 300 ms: nothing of it could be withdrawn"),
      "the stall bound's look at WRITE AND VERIFY")
fault(action="release")
fault(action="clear")
expect(s, 170, GOOD, "WRITE AND VERIFY once its write landed")
assert read_back(s, 11) == b"\xCC" * 512
print("WRITE AND VERIFY behind the stall: its write landed, verified, GOOD")
