#!/usr/bin/python3
"""iscsi_fuzz.py HOST PORT IQN_BASE MODE -- a seeded fuzzer of caskd's iSCSI PDU parser and
CDB decoder (docs/iscsi.md 15.6), built on iscsi_proto.py's initiator.

MODE setup: log in to IQN_BASE.v and IQN_BASE.victim and write the known pattern.
MODE fuzz:  against the read-only snapshot target IQN_BASE.v.s1 only (never the victim):
  (a) login phase: random and mutated Login PDUs on fresh connections;
  (b) full-feature phase after a real login: mutated SCSI Command PDUs (every opcode,
      random fields and lengths), Data-Out with wrong offsets/DataSN/TTT, immediate data
      beyond limits, bad AHS lengths, wrong digests, TMF/Text/NOP/Logout mutations,
      truncated PDUs, connections dropped mid-PDU;
  (c) well-formed READ 6/10/12/16 at random LBAs and lengths: GOOD with exactly the
      pattern, or CHECK CONDITION -- never other data.
  (d) well-formed WRITEs to IQN_BASE.v of the pattern already there, sent as Data-Out
      with one wrong offset/DataSN/TTT/ITT/F bit/length against live R2Ts: the volume's
      checksum (checked by iscsi_fuzz.sh) shows any byte put where it does not belong.
  (e) the parameter lists of the commands that carry Data-Out -- UNMAP, PERSISTENT RESERVE
      OUT (every service action and type, REGISTER AND MOVE's TransportID), MODE SELECT 6/10
      (seeded from MODE SENSE of every page) and WRITE SAME 10/16 (UNMAP/ANCHOR/NDOB) --
      from a corpus of valid lists, mutated (flipped bytes, truncated, extended, length
      fields that lie) with CDB lengths and EDTL that agree or not, on IQN_BASE.scratch:
      well framed, so each is answered GOOD, CHECK CONDITION or RESERVATION CONFLICT and
      the connection lives.
  After each phase a clean session logs in and reads the pattern back.
CASK_SEED reproduces a run; CASK_FUZZ_SCALE scales the iteration counts."""
import os
import random
import select
import struct
import sys

import iscsi_proto as ip

HOST, PORT, BASE, MODE = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ip.HOST, ip.PORT = HOST, PORT
SNAP = BASE + ".v.s1"
BS = 512


def pattern(lba, n):
    return b"".join((struct.pack(">Q", x) + bytes([(x * 7 + 3) & 0xFF]) * 8) * 32
                    for x in range(lba, lba + n))


def sess(target, hd=False, dd=False):
    ip.TARGET = target
    s = ip.Sess(hd, dd)
    s.login()
    return s


def capacity(s):
    st, d = s.cmd(bytes([0x25]) + bytes(9), 8, read=True)
    assert st == 0, "READ CAPACITY status %d" % st
    last, bs = struct.unpack(">II", d[:8])
    assert bs == BS, "block size %d" % bs
    return last + 1


if MODE == "setup":
    for vol, salt in (("v", 0), ("victim", 1 << 40)):
        s = sess(BASE + "." + vol)
        nblk = capacity(s)
        for lba in range(0, nblk, 128):
            st, _ = s.cmd(ip.wr10(lba, 128), 128 * BS, write_data=pattern(lba + salt, 128))
            assert st == 0, "setup write status %d" % st
        s.s.close()
    print("setup: pattern written")
    sys.exit(0)

seed = int(os.environ.get("CASK_SEED") or random.randrange(1 << 32))
scale = float(os.environ.get("CASK_FUZZ_SCALE") or 1)
print("iscsi_fuzz: seed %d (CASK_SEED=%d reproduces)" % (seed, seed), flush=True)
R = random.Random(seed)
ip.os.urandom = lambda n: bytes(R.getrandbits(8) for _ in range(n))  # the ISIDs follow the seed
stats = {"login": 0, "ffp": 0, "ffp_sessions": 0, "reads": 0, "reads_cc": 0, "drops": 0}

NBLK = None


def rbytes(n):
    return bytes(R.getrandbits(8) for _ in range(n))


def rnum():
    return R.choice([0, 1, 2, 7, 8, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                     0xFFFFFFFE, R.getrandbits(32), R.getrandbits(16), R.getrandbits(8)])


def drain(s, wait=0.01):
    """Read whatever the target answers within WAIT; raise ip.Dropped on a drop."""
    while True:
        r, _, _ = select.select([s.s], [], [], wait)
        if not r:
            return
        s.s.settimeout(5)
        bhs, _ = s.recv_pdu()
        if bhs[0] & 0x3F in (0x20, 0x21, 0x22, 0x24, 0x25, 0x26, 0x31, 0x3F):
            s.cmdsn = struct.unpack(">I", bhs[28:32])[0]  # follow the target's ExpCmdSN
        if bhs[0] & 0x3F == 0x3F and bhs[2] == 0:  # a Reject must give a reason
            raise AssertionError("Reject without a reason")
        wait = 0.005


def alive(tag):
    s = sess(SNAP)
    n = capacity(s)
    assert n == NBLK, "capacity changed after %s" % tag
    lba = R.randrange(0, NBLK - 16)
    st, d = s.cmd(ip.rd10(lba, 16), 16 * BS, read=True)
    assert st == 0 and d == pattern(lba, 16), "clean READ after %s: status %d" % (tag, st)
    s.nop()
    s.s.close()
    print("phase %s: caskd alive, clean login + READ ok" % tag, flush=True)


# ---- (a) login phase ----------------------------------------------------------------
KEYS = [b"InitiatorName", b"TargetName", b"SessionType", b"AuthMethod", b"HeaderDigest",
        b"DataDigest", b"MaxRecvDataSegmentLength", b"MaxBurstLength", b"FirstBurstLength",
        b"InitialR2T", b"ImmediateData", b"MaxConnections", b"ErrorRecoveryLevel",
        b"DefaultTime2Wait", b"DefaultTime2Retain", b"MaxOutstandingR2T", b"DataPDUInOrder",
        b"DataSequenceInOrder", b"CHAP_A", b"CHAP_N", b"CHAP_R", b"CHAP_I", b"CHAP_C",
        b"TargetAlias", b"X-junk", b"SendTargets", b""]


def rvalue():
    return R.choice([b"", b"None", b"CRC32C", b"CRC32C,None", b"Yes", b"No", b"Normal",
                     b"Discovery", b"CHAP", b"5", b"0", b"-1", b"99999999999999999999",
                     b"0x" + b"f" * R.randrange(1, 40), b"4294967296", b"-2147483648",
                     SNAP.encode(), BASE.encode() + b".victim", b"All", b"=", b"==",
                     b"\xff\xfe", rbytes(R.randrange(0, 300)), b"A" * R.randrange(200, 9000)])


def login_text():
    parts = [b"InitiatorName=" + ip.INITIATOR.encode(), b"TargetName=" + SNAP.encode(),
             b"SessionType=Normal", b"AuthMethod=None"]
    for _ in range(R.randrange(0, 12)):
        k = R.choice(KEYS)
        parts.insert(R.randrange(len(parts) + 1), k + R.choice([b"=", b"", b"=="]) + rvalue())
    if R.random() < 0.2:
        parts.extend(parts * R.randrange(1, 4))  # repeated keys
    t = b"\0".join(parts) + b"\0"
    if R.random() < 0.2:
        t = t.replace(b"\0", b"", R.randrange(1, 4))  # missing NULs
    if R.random() < 0.1:
        t = t.rstrip(b"\0")
    return t[:R.choice([len(t), len(t), 8192, 70000])]


def login_bhs(text_len):
    b = bytearray(48)
    b[0] = 0x43 if R.random() < 0.85 else R.choice([0x03, 0x40, 0x01, 0x06, R.getrandbits(8)])
    csg = R.choice([0, 1, 1, 2, 3]) if R.random() < 0.4 else 0
    nsg = R.choice([0, 1, 2, 3])
    b[1] = (R.choice([0x80, 0x00, 0xC0, 0x40]) | (csg << 2) | nsg) if R.random() < 0.9 else R.getrandbits(8)
    b[2], b[3] = (0, 0) if R.random() < 0.8 else (R.getrandbits(8), R.getrandbits(8))
    if R.random() < 0.1:
        b[4] = R.getrandbits(8)  # TotalAHSLength
    b[8:14] = b"\x80" + rbytes(5) if R.random() < 0.8 else rbytes(6)
    b[14:16] = struct.pack(">H", R.choice([0, 0, 1, R.getrandbits(16)]))
    struct.pack_into(">I", b, 16, rnum())
    struct.pack_into(">HH", b, 20, R.choice([0, R.getrandbits(16)]), 0)
    struct.pack_into(">II", b, 24, R.choice([1, 0, rnum()]), R.choice([0, rnum()]))
    return b


def mutate(buf, nflips):
    b = bytearray(buf)
    for _ in range(nflips):
        if not b:
            break
        i = R.randrange(len(b))
        b[i] = R.getrandbits(8) if R.random() < 0.5 else b[i] ^ (1 << R.randrange(8))
    return bytes(b)


def login_case():
    s = ip.Sess()
    try:
        for _step in range(R.randrange(1, 4)):
            text = login_text()
            b = login_bhs(len(text))
            how = R.random()
            if how < 0.55:
                s.send_pdu(b, text)  # well-framed, nonsense content
            else:
                b[5:8] = struct.pack(">I", len(text) & 0xFFFFFF)[1:]
                raw = bytes(b) + text + b"\0" * ((4 - len(text) % 4) % 4)
                if how < 0.75:
                    raw = mutate(raw, R.randrange(1, 8))
                elif how < 0.9:
                    raw = raw[:R.randrange(len(raw))]  # truncated: then the connection drops
                else:
                    b[5:8] = rbytes(3)  # DataSegmentLength lies
                    raw = bytes(b) + text
                s.s.sendall(raw)
            drain(s, 0.03)
    except (ip.Dropped, OSError):
        stats["drops"] += 1
    except AssertionError as e:
        raise AssertionError("login phase: %s" % e)
    finally:
        s.s.close()
    stats["login"] += 1


# ---- (b) full-feature phase ---------------------------------------------------------
def rcdb():
    op = R.randrange(256)
    n = R.choice([6, 10, 12, 16, 16, R.randrange(1, 17)])
    c = bytearray(rbytes(n))
    c[0] = op
    if R.random() < 0.6 and n >= 10:  # plausible LBA / length fields
        lba = R.choice([0, NBLK - 1, NBLK, NBLK + 1, R.randrange(NBLK), rnum()])
        ln = R.choice([0, 1, 8, 0xFFFF, R.randrange(256)])
        if n >= 16:
            struct.pack_into(">QI", c, 2, lba & ((1 << 64) - 1), ln)
        else:
            struct.pack_into(">IH", c, 2, lba & 0xFFFFFFFF, ln & 0xFFFF)
    if R.random() < 0.2 and n >= 2:
        c[1] = R.getrandbits(8)  # service actions, FUA/DPO/protect bits
    return bytes(c)


def scsi_cmd_pdu(s):
    b = bytearray(48)
    imm = R.random() < 0.3
    b[0] = 0x01 | (0x40 if imm else 0)
    fl = R.choice([0x80, 0x80 | 0x40, 0x80 | 0x20, 0x80 | 0x60, 0x00, R.getrandbits(8)])
    b[1] = fl | R.choice([1, 0, 2, 4])  # task attribute
    if R.random() < ABUSE / 2:
        b[4] = R.getrandbits(8)  # bad TotalAHSLength
    b[8:16] = bytes(8) if R.random() >= ABUSE else rbytes(8)  # LUN
    struct.pack_into(">I", b, 16, s.itt if R.random() < 0.9 else rnum())
    s.itt += 1
    struct.pack_into(">I", b, 20, R.choice([0, 512, 4096, 65536, 1 << 20, rnum()]))  # EDTL
    struct.pack_into(">I", b, 24, s.cmdsn if R.random() >= ABUSE else rnum())
    if not imm:
        s.cmdsn += 1
    struct.pack_into(">I", b, 28, s.expstatsn)
    c = rcdb()
    b[32:32 + len(c)] = c
    data = b""
    if fl & 0x20 and R.random() < 0.5:
        data = rbytes(R.choice([1, 512, 4096, 8192]))  # immediate data, maybe beyond limits
        if R.random() < 0.1:
            data = b"\0" * R.choice([65537, 70000])
        if R.random() >= ABUSE and len(data) > struct.unpack(">I", b[20:24])[0]:
            data = b""  # well framed: no more immediate data than the command expects
    return b, data


def other_pdu(s):
    b = bytearray(48)
    kind = R.choice(["dataout", "tmf", "text", "nop", "logout", "snack", "random"])
    if kind == "dataout":
        b[0] = 0x05
        b[1] = R.choice([0x80, 0])
        struct.pack_into(">III", b, 16, R.choice([s.itt - 1, rnum()]), rnum(), 0)
        struct.pack_into(">II", b, 36, R.choice([0, 1, rnum()]), R.choice([0, 512, rnum()]))
        return b, rbytes(R.choice([0, 1, 512, 4096]))
    if kind == "tmf":
        b[0] = 0x02 | 0x40
        b[1] = 0x80 | R.choice([1, 2, 3, 4, 5, 6, 7, 8, 0, 0x7F, R.getrandbits(7)])
        b[8:16] = bytes(8) if R.random() < 0.8 else rbytes(8)
        struct.pack_into(">II", b, 16, s.itt, rnum())
        s.itt += 1
        struct.pack_into(">II", b, 24, s.cmdsn, s.expstatsn)
        struct.pack_into(">II", b, 32, rnum(), rnum())
        return b, b""
    if kind == "text":
        b[0] = 0x04 | R.choice([0, 0x40])  # a wrong CmdSN is resynchronised from ExpCmdSN
        b[1] = R.choice([0x80, 0x40, 0xC0, 0])
        struct.pack_into(">II", b, 16, s.itt, R.choice([0xFFFFFFFF, rnum()]))
        s.itt += 1
        struct.pack_into(">II", b, 24, s.cmdsn, s.expstatsn)
        s.cmdsn += 1
        t = R.choice([b"SendTargets=All\0", b"SendTargets=" + SNAP.encode() + b"\0",
                      b"SendTargets=\0", b"MaxBurstLength=1\0", b"X=\0" * 40, login_text()])
        return b, t
    if kind == "nop":
        b[0] = 0x40
        b[1] = 0x80
        struct.pack_into(">II", b, 16, R.choice([s.itt, 0xFFFFFFFF]), R.choice([0xFFFFFFFF, rnum()]))
        struct.pack_into(">I", b, 24, s.cmdsn)
        return b, rbytes(R.choice([0, 4, 100, 9000]))
    if kind == "logout":
        b[0] = 0x06 | 0x40
        b[1] = 0x80 | R.choice([0, 1, 2, 3, R.getrandbits(7)])
        struct.pack_into(">II", b, 16, s.itt, 0)
        struct.pack_into(">HH", b, 20, R.getrandbits(16), 0)
        struct.pack_into(">II", b, 24, s.cmdsn, s.expstatsn)
        return b, b""
    if kind == "snack":
        b[0] = 0x10
        b[1] = 0x80 | R.getrandbits(4)
        struct.pack_into(">IIII", b, 16, rnum(), rnum(), 0, rnum())
        return b, b""
    b = bytearray(rbytes(48))
    b[4] = b[4] & 3
    b[5:8] = bytes([0, R.getrandbits(4), R.getrandbits(8)])
    return b, rbytes(R.randrange(0, 600))


ABUSE = 0.1


def ffp_session():
    global ABUSE
    hd, dd = R.random() < 0.25, R.random() < 0.15
    ABUSE = R.choice([0, 0.01, 0.1])  # framing abuse: some sessions stay well framed, long
    s = sess(SNAP, hd, dd)
    stats["ffp_sessions"] += 1
    try:
        for _ in range(R.randrange(5, 80)):
            b, data = scsi_cmd_pdu(s) if R.random() < 1 - ABUSE * 3.5 else other_pdu(s)
            how = 0.5 if R.random() >= ABUSE * 2 else R.random()
            stats["ffp"] += 1
            if dd and len(data) > 4096:
                data = data[:4096]  # the pure-Python CRC is slow
            if how < 0.8:
                s.send_pdu(b, data)
            elif how < 0.88 and (s.hd or s.dd):
                s.send_pdu(b, data, corrupt_hd=s.hd and R.random() < 0.5, corrupt_dd=s.dd)
            elif how < 0.94:
                b[5:8] = struct.pack(">I", len(data))[1:]
                raw = bytes(b) + data
                s.s.sendall(raw[:R.randrange(len(raw))])  # mid-PDU drop
                s.s.close()
                return
            else:
                b[5:8] = rbytes(3)  # DataSegmentLength lies
                s.s.sendall(bytes(b) + data)
            drain(s)
    except (ip.Dropped, OSError):
        stats["drops"] += 1
    finally:
        s.s.close()


# ---- (c) reads must return the pattern or CHECK CONDITION ----------------------------
def read_cdb(lba, n):
    k = R.choice([6, 10, 12, 16])
    if k == 6:
        return struct.pack(">BBHBB", 0x08, (lba >> 16) & 0x1F, lba & 0xFFFF, n & 0xFF, 0), \
            ((lba >> 16) & 0x1F) << 16 | (lba & 0xFFFF), (n & 0xFF) or 256
    if k == 10:
        return struct.pack(">BBIBHB", 0x28, R.choice([0, 0x08, 0x10]), lba & 0xFFFFFFFF, 0, n & 0xFFFF, 0), \
            lba & 0xFFFFFFFF, n & 0xFFFF
    if k == 12:
        return struct.pack(">BBIIBB", 0xA8, 0, lba & 0xFFFFFFFF, n, 0, 0), lba & 0xFFFFFFFF, n
    return struct.pack(">BBQIBB", 0x88, 0, lba, n, 0, 0), lba, n


def reads(count):
    s = sess(SNAP)
    for _ in range(count):
        lba = R.choice([R.randrange(NBLK), NBLK - R.randrange(1, 8), NBLK + R.randrange(4),
                        R.getrandbits(32), R.getrandbits(64), 0])
        n = R.choice([1, 2, 8, 64, 128, R.randrange(0, 256)])
        cdb, elba, en = read_cdb(lba, n)
        edtl = R.choice([en * BS, en * BS, 0, BS, en * BS + BS, max(0, en * BS - BS)])
        if en * BS > 1 << 20 or edtl > 1 << 20:
            continue
        st, d = s.cmd(cdb, edtl, read=True)
        stats["reads"] += 1
        if st == 0x02:
            stats["reads_cc"] += 1
            continue
        assert st == 0, "READ lba %d n %d: status 0x%x" % (elba, en, st)
        assert elba + en <= NBLK, "READ beyond the end (lba %d n %d) answered GOOD" % (elba, en)
        want = pattern(elba, en)[:edtl]
        assert d == want, "READ lba %d n %d edtl %d: %d bytes that are not the pattern" % (
            elba, en, edtl, len(d))
    s.s.close()


# ---- (d) Data-Out against live R2Ts on the writable volume ----------------------------
def dataout_case(s):
    """A well-formed WRITE whose data is the pattern already there, sent in Data-Out PDUs
    with one mutation (offset, DataSN, TTT, ITT, F bit, length). Each byte sent is the
    pattern for where it truly belongs: caskd placing it anywhere else changes the volume."""
    n = R.choice([1, 8, 32, 128])
    lba = R.randrange(0, NBLK - n)
    itt = s.itt
    s.itt += 1
    b = bytearray(48)
    b[0] = 0x01
    b[1] = 0x80 | 0x20 | 1
    struct.pack_into(">III", b, 16, itt, n * BS, s.cmdsn)
    s.cmdsn += 1
    b[32:42] = ip.wr10(lba, n)
    s.send_pdu(b)
    data = pattern(lba, n)
    bad = R.choice(["offset", "datasn", "ttt", "itt", "final", "long", "none"])
    while True:
        s.s.settimeout(3)  # a timeout counts as a drop: the fuzzer reconnects
        r, _ = s.recv_pdu()
        op = r[0] & 0x3F
        if op == 0x21:
            return r[3]
        assert op == 0x31, "unexpected opcode 0x%x during a write" % op
        off, ln = struct.unpack(">II", r[40:48])
        pos, sn = off, 0
        while pos < off + ln:
            k = min(R.choice([512, 4096, 8192]), off + ln - pos)
            o = bytearray(48)
            o[0] = 0x05
            o[1] = 0x80 if pos + k == off + ln else 0
            struct.pack_into(">I", o, 16, itt)
            o[20:24] = r[20:24]
            struct.pack_into(">II", o, 36, sn, pos)
            chunk = data[pos:pos + k]
            if bad not in ("none", "done") and R.random() < 0.3 and not (bad == "final" and o[1]):
                if bad == "offset":
                    struct.pack_into(">I", o, 40, R.choice([pos + 512, max(0, pos - 512), rnum()]))
                elif bad == "datasn":
                    struct.pack_into(">I", o, 36, R.choice([sn + 1, sn + 2, rnum()]))
                elif bad == "ttt":
                    o[20:24] = rbytes(4)
                elif bad == "itt":
                    struct.pack_into(">I", o, 16, rnum())
                elif bad == "final":
                    o[1] = 0x80  # F early (F missing at the end only makes caskd wait)
                else:
                    chunk = data[pos:pos + k] + data[pos + k:pos + k + 512]
                bad = "done"
            s.send_pdu(o, chunk)
            pos += k
            sn += 1


def dataouts(count):
    s = sess(BASE + ".v")
    for _ in range(count):
        try:
            st = dataout_case(s)
            assert st in (0, 2), "write status 0x%x" % st
        except (ip.Dropped, OSError):
            stats["drops"] += 1
            s.s.close()
            s = sess(BASE + ".v")
        stats["dataout"] += 1
    s.s.close()


# ---- (e) parameter lists of the commands that carry Data-Out, on the scratch volume ---
def seeds_unmap():
    def ul(descs):
        body = b"".join(struct.pack(">QI4x", lba, n) for lba, n in descs)
        return struct.pack(">HH4x", 6 + len(body), len(body)) + body
    n = SCR_BLK
    return [("unmap", ul([(0, 8)])), ("unmap", ul([(n - 8, 8), (16, 1), (100, 0)])), ("unmap", ul([])),
            ("unmap", ul([(n - 1, 2)])), ("unmap", ul([(R.randrange(n), R.randrange(64)) for _ in range(256)])),
            ("unmap", ul([(1, 1)] * 257)), ("unmap", ul([(R.getrandbits(64), R.getrandbits(32))]))]


def seeds_prout():
    out = []
    for sa in range(8):
        for typ in (0, 1, 3, 5, 6, 7, 8, R.getrandbits(4)):
            key = R.choice([0, 0x1111, 0x1111, 0x2222, R.getrandbits(64)])  # 0x1111 is registered
            sakey = R.choice([0, 0x1111, 0x2222, 0x3333, R.getrandbits(64)])
            flags = R.choice([0, 0x01, 0x04, 0x08, R.getrandbits(8)])  # APTPL, ALL_TG_PT, SPEC_I_PT
            if sa == 7:  # REGISTER AND MOVE: a TransportID follows
                tid = b"\x05\0" + struct.pack(">H", 0) + ip.INITIATOR.encode() + b",i,0x" + b"8012345678ab\0"
                tid = tid[:2] + struct.pack(">H", len(tid) - 4) + tid[4:]
                data = struct.pack(">QQxBHI", key, sakey, flags & 3, R.choice([1, 0, 2]), len(tid)) + tid
            else:
                data = struct.pack(">QQ4xBx2x", key, sakey, flags)
            out.append(("prout", (sa, typ, data)))
    return out


def seeds_mode(s):
    out = []
    for pc in (0x3F, 0x08, 0x0A, 0x1C):
        sub = 0x02 if pc == 0x1C else (0xFF if pc == 0x3F and R.random() < 0.5 else 0)
        st, d = s.cmd(bytes([0x5A, 0x08, pc, sub, 0, 0, 0, 0x10, 0, 0]), 4096, read=True)
        if st != 0 or len(d) < 8:
            continue
        pages = bytearray(d[8 + struct.unpack(">H", d[6:8])[0]:])
        off = 0
        while off + 2 <= len(pages):  # PS is reserved in MODE SELECT: clear it in each page
            ln = 4 + struct.unpack(">H", pages[off + 2:off + 4])[0] if pages[off] & 0x40 else 2 + pages[off + 1]
            pages[off] &= 0x7F
            off += ln
        # MODE DATA LENGTH and the device-specific byte (WP, DPOFUA) are reserved in MODE SELECT
        out.append(("mode10", bytes([0, 0, d[2], 0, 0, 0, 0, 0]) + bytes(pages)))
        if len(pages) + 4 <= 255:  # the same pages behind a 4-byte header for MODE SELECT(6)
            out.append(("mode6", bytes([0, d[2], 0, 0]) + bytes(pages)))
    return out


def seeds_wsame():
    return [("ws10", R.choice([b"\0" * BS, b"\xA5" * BS, rbytes(BS)])), ("ws16", b"\0" * BS),
            ("ws16", rbytes(BS)), ("ws10", b"")]


def mutate_list(data):
    m = R.choice(["flip", "flip", "flip", "truncate", "extend", "length", "length", "none", "none", "none"])
    b = bytearray(data)
    if m == "flip" and b:
        for _ in range(R.randrange(1, 6)):
            b[R.randrange(len(b))] = R.getrandbits(8)
    elif m == "truncate":
        b = b[:R.randrange(len(b) + 1)]
    elif m == "extend":
        b += rbytes(R.choice([1, 8, 16, 512]))
    elif m == "length" and len(b) >= 4:
        struct.pack_into(">H", b, R.choice([0, 2]), R.choice([0, 1, 6, 0xFFFF, R.getrandbits(16)]))
    return bytes(b)


def paramlist_case(s, seed):
    kind, arg = seed
    lba = R.choice([0, R.randrange(SCR_BLK), R.randrange(SCR_BLK), SCR_BLK - 1, SCR_BLK, R.getrandbits(32)])
    nb = R.choice([0, 1, 8, 64, R.randrange(SCR_BLK + 8)])
    if kind == "prout":
        sa, typ, data = arg
        data = mutate_list(data)
        plen = R.choice([len(data)] * 4 + [24, 0, len(data) + 8, R.getrandbits(32)])
        cdb = struct.pack(">BBB2xIB", 0x5F, sa | R.choice([0, 0, 0x20]), typ, plen & 0xFFFFFFFF, 0)
    elif kind in ("mode6", "mode10"):
        data = mutate_list(arg)
        flags = R.choice([0x10, 0x10, 0x11, 0x00, R.getrandbits(8) & 0x1F])  # PF, SP
        plen = R.choice([len(data)] * 4 + [0, len(data) + 4, R.getrandbits(16)])
        cdb = (bytes([0x15, flags, 0, 0, plen & 0xFF, 0]) if kind == "mode6"
               else struct.pack(">BB5xHB", 0x55, flags, plen & 0xFFFF, 0))
    elif kind == "unmap":
        data = mutate_list(arg)
        plen = R.choice([len(data)] * 4 + [0, 8, len(data) + 16, R.getrandbits(16)])
        cdb = struct.pack(">BB5xHB", 0x42, R.choice([0, 0, 1]), plen & 0xFFFF, 0)
    else:  # WRITE SAME 10/16: UNMAP, ANCHOR, NDOB bits; the one-block pattern or none
        data = mutate_list(arg) if R.random() < 0.3 else arg
        fl = R.choice([0, 0x08, 0x10, 0x18, 0x01, 0x09, R.getrandbits(8)])
        cdb = (struct.pack(">BBIxHB", 0x41, fl & 0xFE, lba & 0xFFFFFFFF, nb & 0xFFFF, 0) if kind == "ws10"
               else struct.pack(">BBQIxB", 0x93, fl, lba, nb, 0))
    edtl = R.choice([len(data)] * 5 + [0, max(0, len(data) - 1)])
    data = data[:edtl]
    st, _ = s.cmd(cdb, edtl, data if edtl else None)
    assert st in (0x00, 0x02, 0x18), "%s %s: status 0x%x" % (kind, cdb.hex(), st)
    stats["params"] += 1
    stats["params_good"] += st == 0
    k = stats.setdefault("kinds", {}).setdefault(kind, [0, 0, 0])
    k[0] += 1
    k[1] += st == 0
    k[2] += st == 0x18


def paramlists(count):
    s = sess(BASE + ".scratch")
    for _ in range(3):  # the power-on unit attention
        if s.cmd(bytes(6), 0)[0] == 0:
            break
    corpus = [seeds_unmap(), seeds_prout(), seeds_mode(s), seeds_wsame()]
    register = bytes([0x5F, 0x06, 0, 0, 0, 0, 0, 0, 24, 0])  # REGISTER AND IGNORE EXISTING KEY 0x1111
    for _ in range(count):
        if R.random() < 0.1:
            s.cmd(register, 24, struct.pack(">QQ8x", 0, 0x1111))
        seed = R.choice(R.choice(corpus))  # each command kind as often as the others
        paramlist_case(s, seed)  # well framed: a drop is a failure here
        if R.random() < 0.05:
            st, _ = s.cmd(bytes([0x5F, 0x03, 0, 0, 0, 0, 0, 0, 24, 0]), 24,
                          struct.pack(">QQ8x", 0x1111, 0))  # CLEAR, if 0x1111 is registered
    st, _ = s.cmd(bytes(6), 0)
    assert st in (0, 2), "TEST UNIT READY after the parameter lists: 0x%x" % st
    s.s.close()
    print("parameter lists (cases, GOOD, RESERVATION CONFLICT): " + ", ".join(
        "%s %d/%d/%d" % ((k,) + tuple(v)) for k, v in sorted(stats.get("kinds", {}).items())), flush=True)


stats["dataout"] = 0
stats["params"] = stats["params_good"] = 0
s0 = sess(SNAP)
NBLK = capacity(s0)
s0.s.close()
alive("start")
for _ in range(int(300 * scale)):
    login_case()
alive("login")
for _ in range(int(250 * scale)):
    ffp_session()
alive("full-feature")
reads(int(400 * scale))
alive("read-check")
dataouts(int(150 * scale))
alive("data-out")
s0 = sess(BASE + ".scratch")
SCR_BLK = capacity(s0)
s0.s.close()
paramlists(int(300 * scale))
alive("parameter lists")
print("iscsi_fuzz: seed %d: %d login cases, %d full-feature sessions with %d PDUs, %d reads "
      "(%d CHECK CONDITION), %d mutated writes, %d parameter lists (%d GOOD), %d connections dropped "
      "by caskd" % (seed, stats["login"], stats["ffp_sessions"], stats["ffp"], stats["reads"],
                    stats["reads_cc"], stats["dataout"], stats["params"], stats["params_good"], stats["drops"]))
