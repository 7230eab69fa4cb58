#!/usr/bin/env bash
# iscsi_clients -- real iSCSI initiators against caskd --iscsi (docs/iscsi.md §15.3):
# iscsi-ls discovery (volumes and read-only snapshot targets), iscsi-inq
# (standard page, VPD 00/80/83/B0/B1/B2, identifiers equal over two portals
# and after a restart), iscsi-readcapacity16 (LBPME, LBPRZ, exponent),
# qemu-img convert/compare over iscsi://, qemu-io pattern IO at odd
# offsets, a discard reading back as zeros and shown as a hole by
# qemu-img map, and one content seen through iSCSI and NBD both ways.
source "$(dirname "$0")/lib.sh"
need iscsi-ls; need iscsi-inq; need iscsi-readcapacity16; need qemu-img; need qemu-io
qemu-img --help | grep >/dev/null -c "iscsi" || skip "qemu-img has no iscsi driver (qemu-block-extra)"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"

IPORT=$(free_port)
IPORT2=$(free_port)
start_caskd --iscsi "127.0.0.1:$IPORT" --iscsi "127.0.0.1:$IPORT2"
$CASK pool create tank "$T/tank0.vdev" --size 512M
$CASK vol create tank/v --size 64M
$CASK vol create tank/My_Vol --size 16M
IQN=iqn.2026-12.io.cask:tank.v
U="iscsi://127.0.0.1:$IPORT/$IQN/0"
U2="iscsi://127.0.0.1:$IPORT2/$IQN/0"

# discovery lists each volume (names lower-cased, _ -> -) and, after a snapshot, its read-only target
$CASK snap create tank/v@s1
iscsi-ls -s "iscsi://127.0.0.1:$IPORT" > "$T/ls"
grep -q "Target:$IQN Portal:127.0.0.1:$IPORT,1" "$T/ls" || { cat "$T/ls"; fail "no target in discovery"; }
grep -q "Target:$IQN.s1 Portal" "$T/ls" || { cat "$T/ls"; fail "no snapshot target"; }
grep -q "Target:iqn.2026-12.io.cask:tank.my-vol Portal" "$T/ls" || { cat "$T/ls"; fail "no my-vol target"; }
grep -q "Size:63M" "$T/ls" || { cat "$T/ls"; fail "no LUN size in discovery"; }

# an unknown target is refused at login
if iscsi-inq "iscsi://127.0.0.1:$IPORT/$IQN.nope/0" > /dev/null 2>"$T/err"; then fail "unknown target logged in"; fi

# INQUIRY: standard page and the VPD pages
iscsi-inq "$U" > "$T/inq"
grep -q "Vendor:CASK" "$T/inq" || { cat "$T/inq"; fail "standard INQUIRY"; }
iscsi-inq -e 1 -c 0 "$U" > "$T/vpd0"
for p in 0x80 0x83 0xb0 0xb1 0xb2; do grep -qi "Page:$p" "$T/vpd0" || { cat "$T/vpd0"; fail "VPD 00 lacks $p"; }; done
iscsi-inq -e 1 -c 128 "$U" > "$T/sn1"
iscsi-inq -e 1 -c 128 "$U2" > "$T/sn2"
cmp "$T/sn1" "$T/sn2" || fail "serial number differs between portals"
grep -Eq "Unit Serial Number:\[[0-9a-f]{32}\]" "$T/sn1" || { cat "$T/sn1"; fail "serial number"; }
iscsi-inq -e 1 -c 131 "$U" > "$T/id1"
iscsi-inq -e 1 -c 131 "$U2" > "$T/id2"
cmp "$T/id1" "$T/id2" || fail "device identification differs between portals"
grep -q "Designator Type:(3) NAA" "$T/id1" || { cat "$T/id1"; fail "no NAA designator"; }
grep -q "Designator:\[$IQN,t,0x0001\]" "$T/id1" || { cat "$T/id1"; fail "no target port name"; }
iscsi-inq -e 1 -c 176 "$U" | grep -q "maximum unmap block descriptor count:256" || fail "VPD B0"
iscsi-inq -e 1 -c 177 "$U" | grep -q "Medium Rotation Rate:1" || fail "VPD B1"
iscsi-inq -e 1 -c 178 "$U" > "$T/b2"
grep -q "lbpu:1" "$T/b2" && grep -q "lbprz:1" "$T/b2" && grep -q "provisioning type:2" "$T/b2" || { cat "$T/b2"; fail "VPD B2"; }
# the snapshot is another LU: another serial number
iscsi-inq -e 1 -c 128 "iscsi://127.0.0.1:$IPORT/$IQN.s1/0" > "$T/sn3"
cmp -s "$T/sn1" "$T/sn3" && fail "snapshot has the volume's serial number"

# READ CAPACITY(16)
iscsi-readcapacity16 "$U" > "$T/rc16"
grep -q "RETURNED LOGICAL BLOCK ADDRESS:131071" "$T/rc16" && grep -q "LBPME:1 LBPRZ:1" "$T/rc16" &&
  grep -q "LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT:3" "$T/rc16" || { cat "$T/rc16"; fail "READ CAPACITY(16)"; }

# qemu round trip
head -c 64M /dev/urandom > "$T/rand.img"
qemu-img convert -n -f raw -O raw "$T/rand.img" "$U"
qemu-img compare -f raw -F raw "$T/rand.img" "$U"
qemu-io -f raw "$U" \
  -c "write -P 0x5a 1000 5000" -c "read -P 0x5a 1000 5000" \
  -c "write -P 0xa5 1048575 3" -c "read -P 0xa5 1048575 3" \
  -c "write -z 8M 4M" -c "read -P 0 8M 4M" \
  -c "discard 16M 8M" -c "read -P 0 16M 8M" -c "flush" > "$T/qemu-io.out"
if grep -qi "fail\|error" "$T/qemu-io.out"; then cat "$T/qemu-io.out"; fail "qemu-io pattern check"; fi
qemu-img map -f raw --output=json "$U" > "$T/map"
grep -q '"start": 16777216, "length": 8388608, "depth": 0, "present": true, "zero": true, "data": false' "$T/map" ||
  { cat "$T/map"; fail "the discarded range is not a hole (GET LBA STATUS)"; }

# one content through iSCSI and NBD: written over iSCSI, read over NBD, and the other way
qemu-img convert -f raw -O raw "$NBD/tank/v" "$T/via-nbd.img"
qemu-img compare -f raw -F raw "$T/via-nbd.img" "$U"
head -c 1M /dev/urandom > "$T/chunk"
qemu-io -f raw "$NBD/tank/v" -c "write -P 0x3c 40M 1M" >/dev/null
qemu-io -f raw "$U" -c "read -P 0x3c 40M 1M" > "$T/x.out"
grep -qi "fail\|error" "$T/x.out" && { cat "$T/x.out"; fail "NBD write not seen over iSCSI"; }

# a snapshot target is read-only and holds the snapshot's data
out=$(qemu-io -f raw "iscsi://127.0.0.1:$IPORT/$IQN.s1/0" -c "write -P 1 0 4096" 2>&1 || true)
echo "$out" | grep -qi "error\|denied\|protect\|read-only" || { echo "$out"; fail "snapshot target accepted a write"; }

# identity survives a restart
stop_caskd
PORT= start_caskd --iscsi "127.0.0.1:$IPORT"
iscsi-inq -e 1 -c 131 "$U" > "$T/id3"
cmp "$T/id1" "$T/id3" || fail "device identification changed across a restart"
qemu-img compare -f raw -F raw "$T/via-nbd.img" "$U" >/dev/null 2>&1 && fail "compare should see the 40M change"
qemu-io -f raw "$U" -c "read -P 0x3c 40M 1M" -c "read -P 0x5a 1000 5000" > "$T/y.out"
grep -qi "fail\|error" "$T/y.out" && { cat "$T/y.out"; fail "data lost across restart"; }
stop_caskd
! grep -q "AddressSanitizer\|runtime error\|LeakSanitizer" "$T/caskd.log" || fail "sanitizer report in the caskd log"
echo ok
