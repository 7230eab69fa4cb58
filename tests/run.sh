#!/usr/bin/env bash
# Run every test and print one line per test, then the summary line
# "N passed, N failed, N skipped".
#
#   tests/run.sh ASAN_BUILD [RELEASE_BUILD [TSAN_BUILD]]
#
# C tests (unit and integration) run from the sanitizer build. Shell tests
# in tests/integration/*.sh (lib.sh is their helper library) get
# CASK_BUILD (release build: caskd, cask, tools) and CASK_ASAN_BUILD in
# their environment; they start real daemons and drive them with real
# clients (qemu-img, qemu-io, nbdcopy, nbdinfo, python3-libnbd, fio).
# Exit status 0 passes, 77 skips, anything else fails. Each test has a
# time limit (CASK_TEST_TIMEOUT, default 600 s).
#
# With TSAN_BUILD (make MODE=tsan) the concurrency-heavy tests run once
# more under ThreadSanitizer (tsan:NAME): test_concurrency, test_ilog, test_repl_clear,
# test_sync_pipe, test_aread, test_readahead, test_snap_model, cask-stress for 30 s, nbd_kill_load,
# repl_takeover, nbd_holders, nbd_tls, nbd_aread, ctl_fuzz, iscsi_stall and iscsi_caw_race with a TSan
# caskd. tests/tsan_wrap.sh fails a test when any of its processes
# (caskd killed by SIGKILL, cask-stress's killed workers) wrote a report.
set -u
asan=${1:-build/asan}
rel=${2:-build}
tsan=${3:-}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
limit=${CASK_TEST_TIMEOUT:-600}
logdir=$(mktemp -d "${TMPDIR:-/tmp}/cask-tests-XXXXXX")
pass=0 fail=0 skip=0
failed=()
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export CASK_BUILD="$top/$rel" CASK_ASAN_BUILD="$top/$asan"

run_one() {
  local name=$1; shift
  local log="$logdir/$name.log" start end rc
  start=$(date +%s.%N)
  timeout -k 10 "$limit" "$@" >"$log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  local secs
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')
  if [ $rc -eq 0 ]; then
    pass=$((pass+1)); printf 'PASS %-32s %6ss\n' "$name" "$secs"
  elif [ $rc -eq 77 ]; then
    skip=$((skip+1)); printf 'SKIP %-32s %s\n' "$name" "$(tail -n 1 "$log")"
  else
    fail=$((fail+1)); failed+=("$name")
    printf 'FAIL %-32s %6ss (exit %d)\n' "$name" "$secs" "$rc"
    sed 's/^/    | /' "$log" | tail -n 30
  fi
}

for t in "$asan"/tests/test_*; do
  [ -x "$t" ] || continue
  run_one "$(basename "$t")" "$t"
done
for t in tests/integration/*.sh; do
  [ -f "$t" ] || continue
  [ "$(basename "$t")" = lib.sh ] && continue  # helpers, not a test
  run_one "$(basename "$t" .sh)" bash "$t"
done
if [ -n "$tsan" ]; then
  tw="$top/tests/tsan_wrap.sh"
  for t in test_concurrency test_ilog test_repl_clear test_sync_pipe test_aread test_readahead; do
    run_one "tsan:$t" "$tw" "$logdir/tsan-$t" "$tsan/tests/$t"
  done
  # cask-debug check after every 10th op instead of every op: the check is a
  # single-threaded reader (the sanitizer build runs it after every op); the
  # engine's threads are what TSan is here for.
  run_one "tsan:test_snap_model" "$tw" "$logdir/tsan-snap_model" "$tsan/tests/test_snap_model" --check-every 10
  run_one "tsan:cask-stress" "$tw" "$logdir/tsan-stress" "$tsan/cask-stress" --seconds 30 --threads 3 \
      "$logdir/tsan-stress/pool"
  run_one "tsan:nbd_kill_load" env CASK_BUILD="$top/$tsan" CASK_KILL_ROUNDS=8 "$tw" "$logdir/tsan-kill" \
      bash tests/integration/nbd_kill_load.sh
  # the iSCSI stall bound (vio_withdraw from the loop against the layers' threads) and the range lock
  for t in iscsi_stall iscsi_caw_race; do
    run_one "tsan:$t" env CASK_ASAN_BUILD="$top/$tsan" "$tw" "$logdir/tsan-$t" bash tests/integration/$t.sh
  done
  # reconciliation and takeover: three caskd of the TSan build (the tests take caskd from CASK_ASAN_BUILD)
  run_one "tsan:repl_takeover" env CASK_ASAN_BUILD="$top/$tsan" "$tw" "$logdir/tsan-repl_takeover" \
      bash tests/integration/repl_takeover.sh
  # the connection list read by control threads (client.list, kill, --force) and TLS sessions on the loops
  # ... the io_uring completion thread feeding the event loops (nbd_aread), the control loop and workers (ctl_fuzz)
  for t in nbd_holders nbd_tls nbd_aread ctl_fuzz; do
    run_one "tsan:$t" env CASK_BUILD="$top/$tsan" "$tw" "$logdir/tsan-$t" bash tests/integration/$t.sh
  done
fi
rm -rf "$logdir"
echo
if [ $fail -gt 0 ]; then echo "failed: ${failed[*]}"; fi
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ] && [ $((pass+skip)) -gt 0 ]
