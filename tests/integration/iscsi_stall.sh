#!/usr/bin/env bash
# iscsi_stall -- never a silent hang (docs/iscsi.md 9.3, iscsi.c invariants 8 and 9): requests
# held in the volume IO stack (test.vio_fault stall / delay, `pinned` for one the backend has
# begun) past --iscsi-stall-ms. A stalled command that has not begun is withdrawn and answered
# BUSY (TASK SET FULL when the session has another task), and never lands; a begun write is
# waited for while NOP-Out and INQUIRY are answered and new medium commands get TASK SET FULL; a
# begun read is answered at once and its late completion dropped (one not begun is withdrawn
# too); a held write a TMF aborted is withdrawn so the TMF is answered; a COMPARE AND WRITE waiting
# for its range lock is withdrawn; with one IO thread, a FUA write queued for it is withdrawn
# from the worker queue. Then, with the bound off, the 9th live immediate command
# gets TASK SET FULL. The sanitizer caskd; cask's own initiator (iscsi_stall.py).
source "$(dirname "$0")/lib.sh"
need curl
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
IPORT=$(free_port)
MPORT=$(free_port)
start_caskd --iscsi "127.0.0.1:$IPORT" --iscsi-stall-ms 300 --iscsi-nop-ms 0 --test-ops -v --metrics "127.0.0.1:$MPORT"
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 16M
PYTHONPATH="$(dirname "$0")" "$PY" "$(dirname "$0")/iscsi_stall.py" "$IPORT" "$SOCK" "$T/caskd.log" stall
grep -q "stalled commands are answered BUSY or TASK SET FULL where that is safe" "$T/caskd.log" ||
  fail "the stall was not logged"
# the metrics (docs/metrics.md): 6 requests withdrawn (cases 1-3, 5b, 5c), the lock wait of case 6, its
# later grant, and nothing held or queued now
m=$(curl -sf "http://127.0.0.1:$MPORT/metrics") || fail "no metrics scrape"
val() { awk -v k="$1" '$1 == k {print $2}' <<<"$m"; }
[ "$(val cask_io_withdrawn_total)" = 6 ] || fail "cask_io_withdrawn_total $(val cask_io_withdrawn_total), want 6"
[ "$(val cask_range_lock_withdrawn_total)" = 1 ] || fail "cask_range_lock_withdrawn_total $(val cask_range_lock_withdrawn_total)"
[ "$(val cask_range_locks_granted_total)" -ge 1 ] || fail "cask_range_locks_granted_total $(val cask_range_locks_granted_total)"
[ "$(val cask_range_locks_held)" = 0 ] && [ "$(val cask_range_lock_queued)" = 0 ] || fail "range locks held or queued after the test"
stop_caskd
PORT= start_caskd --iscsi "127.0.0.1:$IPORT" --iscsi-stall-ms 300 --iscsi-nop-ms 0 --test-ops -v --io-threads 1
PYTHONPATH="$(dirname "$0")" "$PY" "$(dirname "$0")/iscsi_stall.py" "$IPORT" "$SOCK" "$T/caskd.log" workers
stop_caskd
PORT= start_caskd --iscsi "127.0.0.1:$IPORT" --iscsi-stall-ms 0 --iscsi-nop-ms 0 --test-ops
PYTHONPATH="$(dirname "$0")" "$PY" "$(dirname "$0")/iscsi_stall.py" "$IPORT" "$SOCK" "$T/caskd.log" immediate
stop_caskd
! grep -q "AddressSanitizer\|runtime error\|LeakSanitizer" "$T/caskd.log" || fail "sanitizer report in the caskd log"
echo ok
