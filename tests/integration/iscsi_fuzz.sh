#!/usr/bin/env bash
# iscsi_fuzz -- see iscsi_fuzz.py: seeded random and mutated PDUs in the login and
# full-feature phases and random CDBs against the sanitizer-built caskd's read-only
# snapshot target; reads at random LBAs return the known pattern or CHECK CONDITION; mutated
# parameter lists (UNMAP, PR OUT, MODE SELECT, WRITE SAME) on tank/scratch get a status each.
# Afterwards the volume's, the snapshot's and a never-touched victim volume's
# `cask vol checksum` are unchanged (mutated Data-Out against live R2Ts on tank/v only
# ever carries the bytes already there), caskd is alive, no sanitizer report is logged and
# `cask-debug check` is clean. CASK_SEED=N reproduces a run.
source "$(dirname "$0")/lib.sh"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
IPORT=$(free_port)
IQN=iqn.2026-12.io.cask:tank
start_caskd --iscsi "127.0.0.1:$IPORT" --iscsi-nop-ms 0 -v
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 4M
$CASK vol create tank/victim --size 4M
$CASK vol create tank/scratch --size 4M
export PYTHONPATH="$(dirname "$0")${PYTHONPATH:+:$PYTHONPATH}"
"$PY" "$(dirname "$0")/iscsi_fuzz.py" 127.0.0.1 "$IPORT" "$IQN" setup
$CASK snap create tank/v@s1
sums() { for n in tank/v tank/v@s1 tank/victim; do $CASK vol checksum "$n"; done; }
sums > "$T/before"
"$PY" "$(dirname "$0")/iscsi_fuzz.py" 127.0.0.1 "$IPORT" "$IQN" fuzz || fail "iscsi_fuzz.py"
kill -0 "$CASKD_PID" || fail "caskd died"
sums > "$T/after"
diff "$T/before" "$T/after" || fail "a checksum changed (the fuzzer never writes with a well-formed command)"
stop_caskd
! grep -q "ERROR: AddressSanitizer\|runtime error\|LeakSanitizer" "$T/caskd.log" || { grep -A30 "Sanitizer\|runtime error" "$T/caskd.log" | head -60; fail "sanitizer report in the caskd log"; }
"$CASK_BUILD/cask-debug" check "$T/tank0.vdev" >"$T/check.out" 2>&1 || { cat "$T/check.out"; fail "check"; }
echo ok
