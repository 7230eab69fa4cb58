#!/usr/bin/env bash
# iscsi_pr -- persistent reservation service actions libiscsi 1.19 has no test for, through
# cask's own initiator (iscsi_pr.py): REGISTER AND MOVE (the holder hands its reservation and a
# new key to another I_T nexus named by a TransportID, keeping or dropping its own
# registration; refused from a non-holder, to itself, with key 0, to another target port, for
# an all-registrants type), on the sanitizer caskd.
source "$(dirname "$0")/lib.sh"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
IPORT=$(free_port)
TGT=iqn.2026-12.io.cask:tank.v
A="iqn.2026-12.io.cask.test:node-a 800000000a01"; PA="iqn.2026-12.io.cask.test:node-a,i,0x800000000a01"
B="iqn.2026-12.io.cask.test:node-b 800000000b02"; PB="iqn.2026-12.io.cask.test:node-b,i,0x800000000b02"
C="iqn.2026-12.io.cask.test:node-c 800000000c03"; PC="iqn.2026-12.io.cask.test:node-c,i,0x800000000c03"
pr() { local who=$1 isid=$2; shift 2; PYTHONPATH="$(dirname "$0")" "$PY" "$(dirname "$0")/iscsi_pr.py" 127.0.0.1 "$IPORT" "$TGT" "$who" "$isid" "$@"; }
want() { local exp=$1; shift; local got; got=$(pr "$@" | tr '\n' ' ' | sed 's/ $//'); [ "$got" = "$exp" ] || fail "'$*': got '$got', want '$exp'"; }
start_caskd --iscsi "127.0.0.1:$IPORT" -v
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 16M

# A holds WRITE EXCLUSIVE; B is registered, C never logged in
want "register 0 reserve 0" $A register a1 reserve a1 1
want "register 0" $B register b2
# refused: from a registrant that does not hold it, with key 0, to itself, to another port
want "move 24" $B move b2 b9 1 "$PC"
want "move 2 sense 5/26/00" $A move a1 0 1 "$PC"
want "move 2 sense 5/26/00" $A move a1 a9 1 "$PA"
want "move 2 sense 5/26/00" $A move a1 c3 1 "garbage-not-a-port"
want "res a1 1" $A res
# A moves it to C (not logged in yet) under key c3, keeping its own registration
want "move 0" $A move a1 c3 1 "$PC"
want "res c3 1" $B res
keys=$(pr $B keys); echo "$keys" | grep -q " a1" && echo "$keys" | grep -q " b2" && echo "$keys" | grep -q " c3" ||
  fail "keys after the move: $keys"
want "write 0" $C write
want "write 24" $A write
# C moves it on to B, giving up its registration (UNREG); B's key becomes bb
want "move 0" $C move c3 bb 1 "$PB" unreg
want "res bb 1" $A res
keys=$(pr $A keys); echo "$keys" | grep -q " c3" && fail "UNREG kept the source's registration: $keys"
echo "$keys" | grep -q " bb" || fail "B's new key missing: $keys"
want "write 0" $B write
want "write 24" $C write
# an all-registrants reservation cannot be moved
want "clear 0" $B clear bb
want "register 0 reserve 0" $A register a1 reserve a1 7
want "move 24" $A move a1 c4 7 "$PC"
stop_caskd
! grep -q "AddressSanitizer\|runtime error\|LeakSanitizer" "$T/caskd.log" || fail "sanitizer report in the caskd log"
echo ok
