#!/usr/bin/env bash
# tsan_wrap.sh REPORTDIR CMD... -- run CMD (a test built with MODE=tsan)
# with ThreadSanitizer's reports written to files in REPORTDIR, one per
# process: so a report from a caskd killed with SIGKILL, or from a worker
# that cask-stress forked and killed, is kept too. Fails when CMD fails or
# when any process wrote a report. No suppressions are used.
set -u
rep=$1; shift
mkdir -p "$rep"
export TSAN_OPTIONS="log_path=$rep/tsan second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
rc=0
"$@" || rc=$?
if compgen -G "$rep/tsan.*" >/dev/null; then
  cat "$rep"/tsan.*
  echo "FAIL: ThreadSanitizer reported $(cat "$rep"/tsan.* | grep -c '^WARNING: ThreadSanitizer') problems"
  exit 1
fi
exit $rc
