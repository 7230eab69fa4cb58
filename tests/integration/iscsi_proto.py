#!/usr/bin/python3
"""iscsi_proto.py HOST PORT TARGET -- cask's own small iSCSI initiator for what libiscsi
cannot do (docs/iscsi.md §15.4): data digests, and hostile PDUs. Each case checks an
observable outcome: a Reject with the right reason, a dropped connection, or data read
back; after every hostile case a well-behaved session must still log in, write and read.
Prints one line per case; exit 0 when all pass."""
import os
import socket
import struct
import sys

if __name__ == "__main__":
    HOST, PORT, TARGET = sys.argv[1], int(sys.argv[2]), sys.argv[3]
else:  # imported (iscsi_pr.py): the importer sets HOST, PORT and TARGET
    HOST, PORT, TARGET = None, None, None
INITIATOR = "iqn.2026-12.io.cask.test:proto"


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


# RFC 7143 Appendix B.4 vectors
assert crc32c(bytes(32)) == 0x8A9136AA
assert crc32c(b"\xff" * 32) == 0x62A8AB43
assert crc32c(bytes(range(32))) == 0x46DD794E
assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C


class Dropped(Exception):
    pass


class Sess:
    def __init__(self, hd=False, dd=False, initiator=None, isid=None):
        self.s = socket.create_connection((HOST, PORT), timeout=10)
        # requests go out at once, not held back by Nagle behind an unacknowledged segment
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.initiator = initiator or INITIATOR
        self.isid = isid or (b"\x80" + os.urandom(3) + b"\0\0")
        self.hd = self.dd = False
        self.want_hd, self.want_dd = hd, dd
        self.itt = 1
        self.cmdsn = 1
        self.expstatsn = 0

    def send_pdu(self, bhs, data=b"", corrupt_hd=False, corrupt_dd=False):
        self.s.sendall(self.pdu(bhs, data, corrupt_hd, corrupt_dd))

    def pdu(self, bhs, data=b"", corrupt_hd=False, corrupt_dd=False):
        """the bytes of one PDU (digests as negotiated), to send several with one sendall"""
        bhs = bytearray(bhs)
        bhs[5:8] = struct.pack(">I", len(data))[1:]
        out = bytes(bhs)
        if self.hd:
            d = crc32c(out) ^ (1 if corrupt_hd else 0)
            out += struct.pack("<I", d)
        if data:
            pad = b"\0" * ((4 - len(data) % 4) % 4)
            out += data + pad
            if self.dd:
                out += struct.pack("<I", crc32c(data + pad) ^ (1 if corrupt_dd else 0))
        return out

    def recv_exact(self, n):
        b = b""
        while len(b) < n:
            try:
                c = self.s.recv(n - len(b))
            except (ConnectionResetError, socket.timeout):
                raise Dropped()
            if not c:
                raise Dropped()
            b += c
        return b

    def recv_pdu(self):
        bhs = self.recv_exact(48)
        if self.hd:
            d = struct.unpack("<I", self.recv_exact(4))[0]
            assert d == crc32c(bhs), "bad header digest from the target"
        dlen = struct.unpack(">I", b"\0" + bhs[5:8])[0]
        data = b""
        if dlen:
            pad = (4 - dlen % 4) % 4
            raw = self.recv_exact(dlen + pad)
            if self.dd:
                d = struct.unpack("<I", self.recv_exact(4))[0]
                assert d == crc32c(raw), "bad data digest from the target"
            data = raw[:dlen]
        return bhs, data

    def login(self, keys_extra=b""):
        keys = (b"InitiatorName=" + self.initiator.encode() + b"\0SessionType=Normal\0TargetName=" +
                TARGET.encode() + b"\0AuthMethod=None\0")
        bhs = bytearray(48)
        bhs[0] = 0x43
        bhs[1] = 0x80 | (0 << 2) | 1  # T, CSG 0, NSG 1
        bhs[8:14] = self.isid
        struct.pack_into(">I", bhs, 16, 0)
        struct.pack_into(">I", bhs, 24, self.cmdsn)
        self.send_pdu(bhs, keys)
        r, d = self.recv_pdu()
        assert r[0] & 0x3F == 0x23 and r[36] == 0, "security stage refused %r" % (r[36:38],)
        ops = (b"HeaderDigest=" + (b"CRC32C" if self.want_hd else b"None") + b"\0DataDigest=" +
               (b"CRC32C" if self.want_dd else b"None") +
               b"\0InitialR2T=Yes\0ImmediateData=Yes\0MaxRecvDataSegmentLength=65536\0"
               b"MaxBurstLength=262144\0FirstBurstLength=65536\0X-cask-test=1\0" + keys_extra)
        bhs[1] = 0x80 | (1 << 2) | 3
        self.send_pdu(bhs, ops)
        r, d = self.recv_pdu()
        assert r[0] & 0x3F == 0x23 and r[36] == 0, "operational stage refused %r" % (r[36:38],)
        kv = dict(x.split(b"=", 1) for x in d.split(b"\0") if x)
        assert kv.get(b"X-cask-test") == b"NotUnderstood", kv
        self.statsn = struct.unpack(">I", r[24:28])[0]
        self.hd = kv.get(b"HeaderDigest") == b"CRC32C"
        self.dd = kv.get(b"DataDigest") == b"CRC32C"
        return kv

    def cmd(self, cdb, edtl, write_data=None, read=False):
        itt = self.itt
        self.itt += 1
        bhs = bytearray(48)
        bhs[0] = 0x01
        bhs[1] = 0x80 | (0x20 if write_data is not None else 0) | (0x40 if read else 0) | 1
        struct.pack_into(">I", bhs, 16, itt)
        struct.pack_into(">I", bhs, 20, edtl)
        struct.pack_into(">I", bhs, 24, self.cmdsn)
        self.cmdsn += 1
        bhs[32:32 + len(cdb)] = cdb
        self.send_pdu(bhs, b"")
        got = b""
        while True:
            r, d = self.recv_pdu()
            op = r[0] & 0x3F
            if op == 0x31:  # R2T
                ttt = r[20:24]
                off, ln = struct.unpack(">II", r[40:48])
                pos, sn = off, 0
                while pos < off + ln:
                    n = min(8192, off + ln - pos)
                    o = bytearray(48)
                    o[0] = 0x05
                    o[1] = 0x80 if pos + n == off + ln else 0
                    struct.pack_into(">I", o, 16, itt)
                    o[20:24] = ttt
                    struct.pack_into(">I", o, 36, sn)
                    struct.pack_into(">I", o, 40, pos)
                    self.send_pdu(o, write_data[pos:pos + n])
                    pos += n
                    sn += 1
            elif op == 0x25:  # Data-In
                got += d
                if r[1] & 0x01:
                    return r[3], got
            elif op == 0x21:  # SCSI Response: its data segment is the sense (SenseLength first)
                return r[3], got or d
            else:
                raise AssertionError("unexpected opcode 0x%x" % op)

    def nop(self):
        bhs = bytearray(48)
        bhs[0] = 0x40
        bhs[1] = 0x80
        struct.pack_into(">I", bhs, 16, 0x7777)
        struct.pack_into(">I", bhs, 20, 0xFFFFFFFF)
        struct.pack_into(">I", bhs, 24, self.cmdsn)
        self.send_pdu(bhs, b"ping")
        r, d = self.recv_pdu()
        assert r[0] & 0x3F == 0x20 and d == b"ping", (r, d)

    def expect_drop(self):
        try:
            self.s.settimeout(10)
            while True:
                self.recv_pdu()
        except Dropped:
            return True
        except AssertionError:
            return True


def wr10(lba, n):
    return struct.pack(">BBIBHB", 0x2A, 0, lba, 0, n, 0)


def rd10(lba, n):
    return struct.pack(">BBIBHB", 0x28, 0, lba, 0, n, 0)


failures = 0


def case(name, fn):
    global failures
    try:
        fn()
        print("ok   %s" % name)
    except Exception as e:  # noqa: BLE001 -- report every failure, go on
        failures += 1
        print("FAIL %s: %r" % (name, e))


def good_io(hd=False, dd=False, lba=64):
    s = Sess(hd, dd)
    kv = s.login()
    assert s.hd == hd and s.dd == dd, kv
    data = os.urandom(512 * 64)
    st, _ = s.cmd(wr10(lba, 64), len(data), write_data=data)
    assert st == 0, "write status %d" % st
    st, back = s.cmd(rd10(lba, 64), len(data), read=True)
    assert st == 0 and back == data, "read back differs"
    s.nop()
    s.s.close()


if __name__ == "__main__":
    case("plain session: write (R2T, Data-Out) and read back", lambda: good_io())
    case("header and data digests CRC32C: write and read", lambda: good_io(True, True, 256))


def hostile_then_good(fn):
    def run():
        fn()
        good_io()
    return run


def bad_first_pdu():
    s = Sess()
    bhs = bytearray(48)
    bhs[0] = 0x01  # a SCSI command before login
    s.send_pdu(bhs)
    assert s.expect_drop()


def oversized_segment():
    s = Sess()
    s.login()
    bhs = bytearray(48)
    bhs[0] = 0x40
    bhs[1] = 0x80
    bhs[5:8] = (1 << 20).to_bytes(3, "big")  # 1 MiB, more than the 256 KiB declared
    s.s.sendall(bytes(bhs))
    assert s.expect_drop()


def unknown_opcode():
    s = Sess()
    s.login()
    bhs = bytearray(48)
    bhs[0] = 0x1B  # no such initiator opcode
    bhs[1] = 0x80
    s.send_pdu(bhs, b"junk")
    r, d = s.recv_pdu()
    assert r[0] & 0x3F == 0x3F and r[2] == 0x04 and d[:1] == b"\x1b", (r, d)
    s.nop()  # the connection goes on


def header_digest_error():
    s = Sess(True, False)
    s.login()
    bhs = bytearray(48)
    bhs[0] = 0x40
    bhs[1] = 0x80
    struct.pack_into(">I", bhs, 16, 1)
    s.send_pdu(bhs, b"", corrupt_hd=True)
    assert s.expect_drop()


def data_digest_error():
    s = Sess(True, True)
    s.login()
    bhs = bytearray(48)
    bhs[0] = 0x40
    bhs[1] = 0x80
    struct.pack_into(">I", bhs, 16, 1)
    struct.pack_into(">I", bhs, 20, 0xFFFFFFFF)
    s.send_pdu(bhs, b"abcd", corrupt_dd=True)
    assert s.expect_drop()


def bad_dataout_offset():
    s = Sess()
    s.login()
    bhs = bytearray(48)
    bhs[0] = 0x01
    bhs[1] = 0x80 | 0x20 | 1
    struct.pack_into(">I", bhs, 16, 9)
    struct.pack_into(">I", bhs, 20, 4096)
    struct.pack_into(">I", bhs, 24, s.cmdsn)
    bhs[32:42] = wr10(0, 8)
    s.send_pdu(bhs)
    r, _ = s.recv_pdu()
    assert r[0] & 0x3F == 0x31
    o = bytearray(48)
    o[0] = 0x05
    o[1] = 0x80
    struct.pack_into(">I", o, 16, 9)
    o[20:24] = r[20:24]
    struct.pack_into(">I", o, 40, 1024)  # not the offset the R2T asked for
    s.send_pdu(o, b"x" * 512)
    assert s.expect_drop()


def garbage():
    s = Sess()
    s.s.sendall(os.urandom(4096))
    assert s.expect_drop()


def huge_ahs_and_truncation():
    s = Sess()
    s.login()
    bhs = bytearray(48)
    bhs[0] = 0x40
    bhs[4] = 255  # AHS on a NOP-Out
    s.s.sendall(bytes(bhs) + b"\0" * 1020)
    assert s.expect_drop()


def login_text_bomb():
    s = Sess()
    bhs = bytearray(48)
    bhs[0] = 0x43
    bhs[1] = 0x40  # C: more text follows, forever
    for _ in range(40):
        try:
            s.send_pdu(bhs, b"A" * 4000)
            s.recv_pdu()
        except (Dropped, OSError):
            return
    raise AssertionError("endless login text was accepted")


def cmdsn_out_of_window():
    s = Sess()
    s.login()
    bhs = bytearray(48)
    bhs[0] = 0x01
    bhs[1] = 0x80 | 1
    struct.pack_into(">I", bhs, 16, 77)
    struct.pack_into(">I", bhs, 24, s.cmdsn + 1000)  # far beyond MaxCmdSN: silently dropped
    bhs[32:38] = bytes(6)  # TEST UNIT READY
    s.send_pdu(bhs)
    st, _ = s.cmd(bytes(6), 0)  # the next in-window command is answered
    assert st == 0


def solicit_bound():
    """Three 32 MiB writes: the first two get R2Ts, the third waits (64 MiB per connection)
    until the first has all its data and completed. Causal, no clock: a NOP-Out sent after
    the three commands is answered after every R2T the target sent for them."""
    s = Sess()
    s.login()
    big = 32 << 20
    for i in range(3):
        bhs = bytearray(48)
        bhs[0] = 0x01
        bhs[1] = 0x80 | 0x20 | 1
        struct.pack_into(">I", bhs, 16, 100 + i)
        struct.pack_into(">I", bhs, 20, big)
        struct.pack_into(">I", bhs, 24, s.cmdsn)
        s.cmdsn += 1
        bhs[32:48] = struct.pack(">BBQIBB", 0x8A, 0, 0, big // 512, 0, 0)
        s.send_pdu(bhs)
    nop = bytearray(48)
    nop[0] = 0x40
    nop[1] = 0x80
    struct.pack_into(">I", nop, 16, 0x5555)
    struct.pack_into(">I", nop, 20, 0xFFFFFFFF)
    struct.pack_into(">I", nop, 24, s.cmdsn)
    s.send_pdu(nop)
    r2t = {}
    while True:
        r, d = s.recv_pdu()
        if r[0] & 0x3F == 0x20:
            break
        assert r[0] & 0x3F == 0x31, "expected R2Ts, got opcode 0x%x" % (r[0] & 0x3F)
        r2t[struct.unpack(">I", r[16:20])[0]] = r
    assert sorted(r2t) == [100, 101], "R2Ts before the NOP-In: %r" % sorted(r2t)
    # feed the first write all its data, burst by burst
    data = b"\x5a" * 8192
    r = r2t[100]
    while True:
        off, ln = struct.unpack(">II", r[40:48])
        pos, sn = off, 0
        while pos < off + ln:
            n = min(8192, off + ln - pos)
            o = bytearray(48)
            o[0] = 0x05
            o[1] = 0x80 if pos + n == off + ln else 0
            struct.pack_into(">I", o, 16, 100)
            o[20:24] = r[20:24]
            struct.pack_into(">I", o, 36, sn)
            struct.pack_into(">I", o, 40, pos)
            s.send_pdu(o, data[:n])
            pos += n
            sn += 1
        r, d = s.recv_pdu()
        if r[0] & 0x3F == 0x21:
            assert struct.unpack(">I", r[16:20])[0] == 100 and r[3] == 0, "first write failed"
            break
        assert r[0] & 0x3F == 0x31 and struct.unpack(">I", r[16:20])[0] == 100, "unexpected PDU"
    r, d = s.recv_pdu()  # now the third write may solicit
    assert r[0] & 0x3F == 0x31 and struct.unpack(">I", r[16:20])[0] == 102, "no R2T for the waiting write"
    s.s.close()


if __name__ == "__main__":
    for name, fn in [("a SCSI command before login: dropped", bad_first_pdu),
                     ("Data-Out held per connection is bounded: the third 32 MiB write waits", solicit_bound),
                     ("data segment over MaxRecvDataSegmentLength: dropped", oversized_segment),
                     ("unknown opcode: Reject 0x04, session goes on", unknown_opcode),
                     ("header digest error: dropped", header_digest_error),
                     ("data digest error: dropped", data_digest_error),
                     ("Data-Out at a wrong offset: dropped", bad_dataout_offset),
                     ("random bytes: dropped", garbage),
                     ("AHS on a NOP-Out: dropped", huge_ahs_and_truncation),
                     ("endless login text: refused", login_text_bomb),
                     ("CmdSN out of the window: dropped silently", cmdsn_out_of_window)]:
        case(name + " (then a good session works)", hostile_then_good(fn))

    sys.exit(1 if failures else 0)
