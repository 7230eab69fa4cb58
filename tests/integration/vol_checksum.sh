#!/usr/bin/env bash
# vol_checksum -- `cask vol checksum POOL/VOL[@SNAP]` through a real caskd:
# the digest depends on the logical bytes and the size only (a volume, its
# snapshot, a clone, a received copy on a second caskd and a copy with
# another block size written by nbdcopy all agree; a hole and written
# zeros agree), one changed byte changes it, a snapshot keeps its digest,
# -j prints JSON, bad names and damaged blocks are clear errors. The
# digest's definition is checked against an independent computation by
# tests/unit/test_vol_digest.c.
source "$(dirname "$0")/lib.sh"
need qemu-io
need nbdcopy

start_caskd
start_caskd_b
B() { CASK_SOCKET="$SOCK_B" "$CASK" "$@"; }
sum() { "$CASK" vol checksum "$1" | awk '{print $1}'; }

$CASK pool create tank "$T/a0.vdev" --size 256M
B pool create tank "$T/b0.vdev" --size 256M
$CASK vol create tank/v --size 24M
empty=$(sum tank/v)
[[ $empty =~ ^[0-9a-f]{32}$ ]] || fail "digest '$empty' is not 32 hex digits"
$CASK vol create tank/z --size 24M
[ "$(sum tank/z)" = "$empty" ] || fail "two empty volumes of one size differ"
$CASK vol create tank/small --size 16M
[ "$(sum tank/small)" != "$empty" ] || fail "the size is not part of the digest"

# scattered data, a discard and written zeros
qemu-io -f raw -c "write -P 7 0 3M" -c "write -P 9 5M 100k" -c "write -P 1 23M 1M" \
  -c "discard 1M 512k" -c "write -z 6M 1M" "$NBD/tank/v" >/dev/null
d1=$(sum tank/v)
[ "$d1" != "$empty" ] || fail "writes did not change the digest"
$CASK snap create tank/v@s1
[ "$(sum tank/v@s1)" = "$d1" ] || fail "the snapshot's digest differs from its volume's"
$CASK vol clone tank/v@s1 tank/c
[ "$(sum tank/c)" = "$d1" ] || fail "a clone's digest differs from its origin's"

# the same bytes by another way: a received copy, and a 16K-block volume written by nbdcopy
$CASK send tank/v@s1 | B recv tank/r
[ "$(B vol checksum tank/r | awk '{print $1}')" = "$d1" ] || fail "the received copy's digest differs"
$CASK vol create tank/w -o volblocksize=16K -o compression=zstd --size 24M
nbdcopy "$NBD/tank/v@s1" "$NBD/tank/w"
[ "$(sum tank/w)" = "$d1" ] || fail "a copy with another block size (zeros written) differs"
# written zeros where v has a hole: equal
qemu-io -f raw -c "write -P 0 1M 512k" "$NBD/tank/c" >/dev/null
[ "$(sum tank/c)" = "$d1" ] || fail "written zeros and a hole give different digests"

# one byte changes it; the snapshot keeps the old one
qemu-io -f raw -c "write -P 8 12345 1" "$NBD/tank/v" >/dev/null
d2=$(sum tank/v)
[ "$d2" != "$d1" ] || fail "a changed byte did not change the digest"
[ "$(sum tank/v@s1)" = "$d1" ] || fail "the snapshot's digest moved"

# output forms and errors
$CASK vol checksum tank/v | grep -qx "$d2  tank/v" || fail "text form: $($CASK vol checksum tank/v)"
$CASK vol checksum -j tank/v | "$PY" -c 'import json,sys; d=json.load(sys.stdin); assert d["digest"]==sys.argv[1] and d["name"]=="tank/v", d' "$d2"
expect_fail 1 "does not exist" "$CASK" vol checksum tank/nope
expect_fail 1 "does not exist" "$CASK" vol checksum tank/v@nope
expect_fail 1 "pool" "$CASK" vol checksum nopool/v
expect_fail 2 "needs POOL/VOL" "$CASK" vol checksum
expect_fail 2 "takes" "$CASK" vol checksum tank/v --bogus

# a damaged read is an error, never a digest (after a restart nothing is cached)
stop_caskd
PORT= start_caskd
$CASK pool inject tank read --persistent
expect_fail 1 "" "$CASK" vol checksum tank/v@s1
$CASK pool inject tank none
$CASK pool clear tank >/dev/null 2>&1 || true
[ "$(sum tank/v@s1)" = "$d1" ] || fail "the digest after the fault cleared differs"
echo "ok: vol checksum: equal bytes equal digests (snapshot, clone, recv, other block size, hole vs zeros); changes seen; errors clear"
