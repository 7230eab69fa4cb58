#!/usr/bin/env bash
# iscsi_aptpl -- persistent reservations that outlive their sessions and, with APTPL, caskd:
# a version-7 pool (tests/fixtures/pool-v7.vdev.xz, made by the version-7 build: pool old7,
# volume old7/v of 8M whose 64K chunk i holds the byte i+1, a snapshot policy on it) is
# imported; reservations without APTPL leave its format at 7 and survive the last logout but
# not a restart (SPC-4 5.14.3); with APTPL the state goes into the pool's attribute object
# (format 8, docs/on-disk-format.md 4.9), is restored after a restart bound to the same I_T
# nexuses (the holder keeps writing, a registrant does not), and APTPL=0 removes it again.
# cask-debug check passes at each stage.
source "$(dirname "$0")/lib.sh"
need xz; need qemu-img
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
xz -dc "$(dirname "$0")/../fixtures/pool-v7.vdev.xz" > "$T/old7.vdev"
fmt() { "$CASK_BUILD/cask-debug" tree "$T/old7.vdev" | sed -n 's/.*format version \([0-9]*\).*/\1/p'; }
[ "$(fmt)" = 7 ] || fail "the fixture is not a version-7 pool ($(fmt))"
IPORT=$(free_port)
TGT=iqn.2026-12.io.cask:old7.v
A="iqn.2026-12.io.cask.test:node-a 800000000a01"
B="iqn.2026-12.io.cask.test:node-b 800000000b02"
pr() { local who=$1 isid=$2; shift 2; PYTHONPATH="$(dirname "$0")" "$PY" "$(dirname "$0")/iscsi_pr.py" 127.0.0.1 "$IPORT" "$TGT" "$who" "$isid" "$@"; }
check() { "$CASK_BUILD/cask-debug" check "$T/old7.vdev" > "$T/check.out" 2>&1 || { cat "$T/check.out"; fail "cask-debug check ($1)"; }; }

start_caskd --iscsi "127.0.0.1:$IPORT" -v
[ "$($CASK pool import --path "$T/old7.vdev")" = old7 ] || fail "import did not name pool old7"
# the fixture's data
qemu-img convert -f raw -O raw "$NBD/old7/v" "$T/v.img"
"$PY" -c 'import sys; d=open(sys.argv[1],"rb").read(); sys.exit(any(d[i*65536:(i+1)*65536] != bytes([i+1])*65536 for i in range(128)))' "$T/v.img" ||
  fail "the version-7 pool's data changed"

# without APTPL: kept across the last logout (SPC-4: a registration outlives its nexus)
[ "$(pr $A caps)" = "caps ptpl_c=1 ptpl_a=0" ] || fail "REPORT CAPABILITIES: $(pr $A caps)"
pr $A register a1 | grep -qx "register 0" || fail "register without APTPL"
[ "$(pr $B keys)" = "keys 1 a1" ] || fail "the registration did not outlive its session: $(pr $B keys)"
$CASK pool export old7 && $CASK pool import --path "$T/old7.vdev" >/dev/null
[ "$(fmt)" = 7 ] || fail "a reservation without APTPL changed the format to $(fmt)"
check "after reservations without APTPL"
stop_caskd
PORT= start_caskd --iscsi "127.0.0.1:$IPORT" -v
[ "$(pr $B keys)" = "keys 0" ] || fail "a registration without APTPL survived a restart: $(pr $B keys)"

# with APTPL: A registers and holds WRITE EXCLUSIVE, B registers with APTPL=1 (the LU's setting
# is the last REGISTER's bit)
pr $A register a1 reserve a1 1 | tr '\n' ' ' | grep -q "register 0 reserve 0" || fail "A register/reserve"
pr $B register b2 aptpl write > "$T/b1"
grep -qx "register 0" "$T/b1" && grep -qx "write 24" "$T/b1" || { cat "$T/b1"; fail "B register (APTPL) / conflict"; }
[ "$(pr $B caps)" = "caps ptpl_c=1 ptpl_a=1" ] || fail "PTPL_A not set: $(pr $B caps)"
keys=$(pr $A keys)
[ "$(echo "$keys" | wc -w)" = 4 ] || fail "READ KEYS: $keys"
$CASK pool export old7
[ "$(fmt)" = 8 ] || fail "APTPL did not make the pool version 8 ($(fmt))"
check "with an APTPL reservation"
$CASK pool import --path "$T/old7.vdev" >/dev/null
stop_caskd
PORT= start_caskd --iscsi "127.0.0.1:$IPORT" -v
[ "$(pr $B keys)" = "$keys" ] && [ "$(pr $B res)" = "res a1 1" ] ||
  fail "APTPL state not restored: $(pr $B keys) / $(pr $B res)"
grep -q "persistent reservations restored from the pool" "$T/caskd.log" || fail "restore not logged"
[ "$(pr $B write)" = "write 24" ] || fail "a registrant wrote through WRITE EXCLUSIVE after the restart"
[ "$(pr $A write)" = "write 0" ] || fail "the restored holder cannot write"
[ "$(pr $B caps)" = "caps ptpl_c=1 ptpl_a=1" ] || fail "PTPL_A lost in the restart"

# a snapshot target: APTPL refused (PTPL_C 0)
$CASK snap create old7/v@s1
TGT=iqn.2026-12.io.cask:old7.v.s1
[ "$(pr $A caps)" = "caps ptpl_c=0 ptpl_a=0" ] || fail "snapshot REPORT CAPABILITIES: $(pr $A caps)"
out=$(pr $A register c3 aptpl); [ "$out" = "register 2 sense 5/26/00" ] || fail "APTPL accepted on a snapshot: $out"
TGT=iqn.2026-12.io.cask:old7.v

# APTPL=0 (B's REGISTER): the records leave the pool; a restart forgets the state
pr $B register b3 | grep -qx "register 0" || fail "register with APTPL=0"
[ "$(pr $A caps)" = "caps ptpl_c=1 ptpl_a=0" ] || fail "PTPL_A still set: $(pr $A caps)"
stop_caskd
check "after APTPL was cleared"
PORT= start_caskd --iscsi "127.0.0.1:$IPORT" -v
[ "$(pr $A keys)" = "keys 0" ] || fail "state after APTPL=0 and a restart: $(pr $A keys)"
[ "$(pr $A write)" = "write 0" ] || fail "write after the reservation was gone"
stop_caskd
check "at the end"
! grep -q "AddressSanitizer\|runtime error\|LeakSanitizer" "$T/caskd.log" || fail "sanitizer report in the caskd log"
echo ok
