#!/usr/bin/env bash
# stress -- cask-stress (tools/cask-stress.c, our ztest) for a fixed time:
# every engine operation from concurrent threads against a model, with
# SIGKILL, abandon, injected-fault + pool clear and export rounds, on the
# release build (more operations per second, CASK_STRESS_SECONDS, default
# 40), with three vdevs (10 s) and on the sanitizer build (10 s): one
# minute in all. Then the negative control: with sync=disabled FLUSH and
# FUA make nothing durable, and cask-stress must notice the lost writes.
#
# It caught: a management operation made in the open txg (resize, rename,
# set) leaked into the dataset record written by the txg that was syncing
# at the same time (txg_capture now snapshots those fields at quiesce).
#
# It caught: a hold made in the open txg while the previous txg synced was
# written by that txg (hold_sync read the live holds), so a kill could keep
# the hold without the writes its thread made before it ("the hold in
# flight shows on one volume, but not everything before it on the other",
# or "no prefix of its ops ... matches what volume v0 holds" when those
# writes were to the held snapshot's own volume; seed 2443684589037203758,
# about one minute-long run in four). The holds are now captured at
# quiesce (hold_capture; test_hold_lost_txg).
set -euo pipefail
: "${CASK_BUILD:?}" "${CASK_ASAN_BUILD:?}"
dir=$(mktemp -d "${TMPDIR:-/tmp}/cask-stress-XXXXXX")
trap 'rm -rf "$dir"' EXIT
seconds=${CASK_STRESS_SECONDS:-40}
"$CASK_BUILD/cask-stress" --seconds "$seconds" --threads 4 "$dir/rel"
"$CASK_BUILD/cask-stress" --seconds 10 --threads 3 --vdevs 3 "$dir/multi"
"$CASK_ASAN_BUILD/cask-stress" --seconds 10 --threads 2 "$dir/asan"
# Negative control: the checker must catch FLUSHed writes that were lost.
rc=0
"$CASK_BUILD/cask-stress" --seconds 30 --threads 2 --control "$dir/control" > "$dir/control.out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q "no prefix of its ops" "$dir/control.out" || {
  cat "$dir/control.out"; echo "FAIL: the control run (sync=disabled) was not caught (exit $rc)"; exit 1; }
echo "control (sync=disabled): $(grep -m1 'no prefix' "$dir/control.out")"
# Bad arguments are refused with usage.
if "$CASK_BUILD/cask-stress" --threads 0 "$dir/x" 2>/dev/null; then exit 1; fi
if "$CASK_BUILD/cask-stress" 2>/dev/null; then exit 1; fi
"$CASK_BUILD/cask-stress" --help | grep -q "SIGKILL"
