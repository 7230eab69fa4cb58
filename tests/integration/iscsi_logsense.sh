#!/usr/bin/env bash
# iscsi_logsense -- LOG SENSE (docs/iscsi.md §20): the supported-pages list (00h, and 00h/FFh
# with subpages) and the Logical Block Provisioning page (0Ch, SBC-3): the available count
# (the pool's free space) and the used count (the blocks the LU references), in 1 MiB threshold
# sets, follow 8 MiB written and then unmapped; PARAMETER POINTER, the allocation length, and
# the refused fields (SP, an unknown page, a pointer past the last parameter). cask's own
# initiator against the sanitizer caskd.
source "$(dirname "$0")/lib.sh"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
IPORT=$(free_port)
start_caskd --iscsi "127.0.0.1:$IPORT" --iscsi-nop-ms 0
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 64M
cat > "$T/ls.py" <<'PY'
import struct, sys, time
import iscsi_proto as ip
ip.HOST, ip.PORT, ip.TARGET = "127.0.0.1", int(sys.argv[1]), "iqn.2026-12.io.cask:tank.v"
s = ip.Sess()
s.s.settimeout(60)
s.login()
for _ in range(3):  # the power-on unit attention
    st, _ = s.cmd(bytes(6), 0)
    if st == 0:
        break

def log_sense(page, sub=0, ptr=0, alloc=512, byte1=0, pc=1):
    cdb = bytes([0x4D, byte1, (pc << 6) | page, sub, 0]) + struct.pack(">HH", ptr, alloc) + b"\0"
    return s.cmd(cdb, alloc, read=True)

def sense_of(d):  # the SCSI Response's data: SenseLength, then fixed-format sense
    return d[2 + 2] & 0x0F, d[2 + 12], d[2 + 13]

st, d = log_sense(0)
assert st == 0 and d == bytes([0x00, 0x00, 0x00, 0x02, 0x00, 0x0C]), (st, d.hex())
st, d = log_sense(0, 0xFF)
assert st == 0 and d == bytes([0x40, 0xFF, 0x00, 0x06, 0, 0, 0, 0xFF, 0x0C, 0]), (st, d.hex())
print("supported pages: 00h, 0Ch")

def lbp(ptr=0):
    st, d = log_sense(0x0C, ptr=ptr)
    assert st == 0 and d[0] == 0x0C and d[1] == 0, (st, d.hex())
    assert struct.unpack(">H", d[2:4])[0] == len(d) - 4, d.hex()
    out = {}
    for i in range(4, len(d), 12):
        code, ctl, plen = struct.unpack(">HBB", d[i:i + 4])
        assert ctl == 0x23 and plen == 8, d.hex()
        out[code] = (struct.unpack(">I", d[i + 4:i + 8])[0], d[i + 8] & 3)
    return out

p = lbp()
assert sorted(p) == [1, 2] and p[1][1] == 2 and p[2][1] == 1, p
avail0, used0 = p[1][0], p[2][0]
assert 0 < avail0 <= 256 and used0 < 8, p
print("0Ch: available %d, used %d (MiB sets)" % (avail0, used0))
assert sorted(lbp(2)) == [2], "PARAMETER POINTER 2: only the used count"

# 8 MiB of data, made durable; the counts follow once the txg commits (polled, bounded)
chunk = 2048  # blocks of 512 bytes: 1 MiB
for i in range(8):
    lba = 4096 + i * chunk
    st, _ = s.cmd(bytes([0x2A, 0]) + struct.pack(">I", lba) + b"\0" + struct.pack(">H", chunk) + b"\0",
                  chunk * 512, bytes([0x5A + i]) * (chunk * 512))
    assert st == 0, "write %d: 0x%x" % (i, st)
st, _ = s.cmd(bytes([0x35] + [0] * 9), 0)
assert st == 0, "SYNCHRONIZE CACHE 0x%x" % st

def until(cond, what):
    end = time.monotonic() + 120
    while True:
        p = lbp()
        if cond(p):
            return p
        if time.monotonic() > end:
            sys.exit("FAIL: %s: %r" % (what, p))
        time.sleep(0.2)

p = until(lambda p: p[2][0] >= used0 + 8 and p[1][0] <= avail0 - 8, "the counts after 8 MiB written")
print("after 8 MiB written: available %d, used %d" % (p[1][0], p[2][0]))
unmap = struct.pack(">HH", 6 + 16, 16) + bytes(4) + struct.pack(">QI", 4096, 8 * chunk) + bytes(4)
st, _ = s.cmd(bytes([0x42, 0, 0, 0, 0, 0, 0]) + struct.pack(">H", len(unmap)) + b"\0", len(unmap), unmap)
assert st == 0, "UNMAP 0x%x" % st
st, _ = s.cmd(bytes([0x35] + [0] * 9), 0)
p = until(lambda p: p[2][0] <= used0 + 1, "the used count after UNMAP")
print("after UNMAP: available %d, used %d" % (p[1][0], p[2][0]))

st, d = log_sense(0x0C, alloc=4)
assert st == 0 and len(d) == 4 and d[0] == 0x0C and struct.unpack(">H", d[2:4])[0] == 24, (st, d.hex())
for what, kw, field in (("SP=1", dict(page=0x0C, byte1=1), 1), ("page 0Dh", dict(page=0x0D), 2),
                        ("pointer 3", dict(page=0x0C, ptr=3), 5), ("subpage 01h", dict(page=0x0C, sub=1), 3)):
    st, d = log_sense(**kw)
    assert st == 2 and sense_of(d) == (5, 0x24, 0), "%s: 0x%x %s" % (what, st, d.hex())
    assert d[2 + 15] & 0x80 and d[2 + 15] & 0x40 and struct.unpack(">H", d[2 + 16:2 + 18])[0] == field, \
        "%s: field pointer %s" % (what, d.hex())
print("allocation length, SP, unknown page and subpage, pointer past the end: as SPC-4 says")
PY
PYTHONPATH="$(dirname "$0")" "$PY" "$T/ls.py" "$IPORT"
stop_caskd
! grep -q "AddressSanitizer\|runtime error\|LeakSanitizer" "$T/caskd.log" || fail "sanitizer report in the caskd log"
echo ok
