#!/usr/bin/env bash
# iscsi_thin -- thin provisioning under a real initiator (docs/iscsi.md §13): a thin volume
# larger than its pool, written through qemu-io iscsi:// until the pool is full. Crossing the
# soft threshold (--iscsi-tp-threshold 50: half the pool) is reported once as the unit attention
# 38/07 THIN PROVISIONING SOFT THRESHOLD REACHED (qemu logs it and retries the command), the
# full pool as DATA PROTECT 27/07 (qemu: ENOSPC) for the writes only; reads keep working, a
# discard makes the pool writable again and re-arms the threshold, and a second crossing is
# reported again. The threshold is the logical block provisioning mode page 1C/02 (MODE SENSE
# and MODE SELECT through cask's initiator) and VPD B2's THRESHOLD EXPONENT (iscsi-inq).
source "$(dirname "$0")/lib.sh"
need qemu-io; need iscsi-inq
qemu-io --help | grep -q iscsi || qemu-img --help | grep -q iscsi || skip "qemu has no iscsi driver (qemu-block-extra)"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
HERE=$(cd "$(dirname "$0")" && pwd)
IPORT=$(free_port)
start_caskd --iscsi "127.0.0.1:$IPORT" --iscsi-tp-threshold 50
$CASK pool create tank "$T/tank0.vdev" --size 96M
$CASK vol create tank/v --size 256M
$CASK vol set compression=off tank/v
IQN=iqn.2026-12.io.cask:tank.v
U="iscsi://127.0.0.1:$IPORT/$IQN/0"
POOLSIZE=$($CASK pool list -H -p -o name,size | awk '$1 == "tank" {print $2}')
SETS=$((POOLSIZE / 100 * 50 / 1048576))

# VPD B2: one threshold set is 2^11 512-byte blocks = 1 MiB
iscsi-inq -e 1 -c 178 "$U" | grep -q "Threshold Exponent:11" || { iscsi-inq -e 1 -c 178 "$U"; fail "VPD B2 exponent"; }

# the mode page: one soft threshold on available resources, armed on decrease, SETS sets;
# ENABLED and the count change by MODE SELECT, other bits are refused
cat > "$T/page.py" <<'PY'
import struct, sys
import iscsi_proto as ip
ip.HOST, ip.PORT, ip.TARGET = "127.0.0.1", int(sys.argv[1]), sys.argv[2]
sets = int(sys.argv[3])
s = ip.Sess()
s.login()
def cmd(cdb, edtl, data=None, read=False):
    for _ in range(3):
        st, got = s.cmd(cdb, edtl, data, read)
        if not (st == 2 and len(got) > 4 and got[4] & 0x0F == 6):
            return st, got
    return st, got
def sense(pc=0, sub=0x02):
    st, got = cmd(bytes([0x5A, 0x08, pc << 6 | 0x1C, sub, 0, 0, 0, 1, 0, 0]), 256, read=True)
    assert st == 0, "MODE SENSE 1C/%02x: status %d" % (sub, st)
    return got[8:]
p = sense()
assert p[0] == 0x5C and p[1] == 0x02 and struct.unpack(">H", p[2:4])[0] == 20 and len(p) == 24, p.hex()
t = p[16:24]
assert t[0] == 0x81 and t[1] == 0x01 and struct.unpack(">I", t[4:8])[0] == sets, "descriptor %s, want %d sets" % (t.hex(), sets)
chg = sense(pc=1)[16:24]
assert chg[0] == 0x80 and chg[4:8] == b"\xff" * 4 and chg[1] == 0, chg.hex()
allp = sense(sub=0xFF)
assert allp[0] == 0x1C and allp[12] == 0x5C and allp[13] == 0x02, "1C/FF: %s" % allp.hex()
def select(page):
    par = bytes(8) + page
    return cmd(bytes([0x55, 0x10, 0, 0, 0, 0, 0, 0, len(par), 0]), len(par), par)
new = bytearray(p); struct.pack_into(">I", new, 20, 7); new[16] = 0x01
st, _ = select(bytes(new))
assert st == 0, "MODE SELECT of the count and ENABLED: %d" % st
t = sense()[16:24]
assert t[0] == 0x01 and struct.unpack(">I", t[4:8])[0] == 7, t.hex()
bad = bytearray(p); bad[17] = 0x02  # THRESHOLD RESOURCE is not changeable
st, got = select(bytes(bad))
assert st == 2 and got[2 + 2] & 0x0F == 5 and got[2 + 12] == 0x26, "a fixed field changed: %d %s" % (st, got.hex())
st, _ = select(bytes(p))  # back to what it was
assert st == 0 and sense()[16:24] == p[16:24]
print("mode page 1C/02 ok")
PY
PYTHONPATH="$HERE" "$PY" "$T/page.py" "$IPORT" "$IQN" "$SETS"

# fill: 4 MiB writes past the pool's size
fill() { # FROM_MIB COUNT
  local a=() i
  for i in $(seq 0 $(($2 - 1))); do a+=(-c "write -P 0x5a $(($1 + i * 4))M 4M"); done
  qemu-io -f raw "$U" "${a[@]}" > "$T/fill.out" 2>&1 || true
}
fill 0 30
grep -c "SOFT THRESHOLD REACHED(0x3807)" "$T/fill.out" > "$T/n" || true
[ "$(cat "$T/n")" -eq 1 ] || { cat "$T/fill.out"; fail "want one soft threshold unit attention, got $(cat "$T/n")"; }
grep -q "SENSE KEY:DATA PROTECTION(7) .*(0x2707)" "$T/fill.out" || { cat "$T/fill.out"; fail "no 27/07 on the full pool"; }
grep -q "write failed: No space left on device" "$T/fill.out" || { cat "$T/fill.out"; fail "qemu saw no ENOSPC"; }
[ "$(grep -c "fell below the thin provisioning soft threshold" "$T/caskd.log")" -eq 1 ] || fail "caskd's log line"
# the UA came before the first 27/07 (the threshold is below the full mark)
ua=$(grep -n "0x3807" "$T/fill.out" | head -1 | cut -d: -f1)
nospc=$(grep -n "0x2707" "$T/fill.out" | head -1 | cut -d: -f1)
[ "$ua" -lt "$nospc" ] || { cat "$T/fill.out"; fail "the threshold was reported after the pool filled"; }
# reads of what was written still work on the full pool
qemu-io -f raw "$U" -c "read -P 0x5a 0 4M" -c "read -P 0x5a 20M 4M" > "$T/r.out" 2>&1
grep -qi "fail\|error" "$T/r.out" && { cat "$T/r.out"; fail "reads on the full pool"; }
# a discard frees the pool: writes work again and the threshold re-arms (frees count once their txg
# committed: poll with small writes, a generous bound)
qemu-io -f raw "$U" -c "discard 0 128M" > "$T/d.out" 2>&1
grep -qi "fail\|error" "$T/d.out" && { cat "$T/d.out"; fail "discard on the full pool"; }
for i in $(seq 1 100); do
  qemu-io -f raw "$U" -c "write -P 0x33 200M 64k" > "$T/w.out" 2>&1 || true
  grep -q "re-armed" "$T/caskd.log" && ! grep -q "fail" "$T/w.out" && break
  sleep 0.2
done
grep -q "re-armed" "$T/caskd.log" || { cat "$T/w.out"; fail "the threshold did not re-arm after the discard"; }
grep -q "fail" "$T/w.out" && { cat "$T/w.out"; fail "a write after the discard"; }
# a second crossing is reported again
fill 0 30
[ "$(grep -c "SOFT THRESHOLD REACHED(0x3807)" "$T/fill.out")" -eq 1 ] || { cat "$T/fill.out"; fail "second crossing"; }
[ "$(grep -c "fell below the thin provisioning soft threshold" "$T/caskd.log")" -eq 2 ] || fail "second log line"
stop_caskd
! grep -q "AddressSanitizer\|runtime error\|LeakSanitizer" "$T/caskd.log" || fail "sanitizer report in the caskd log"
echo ok
