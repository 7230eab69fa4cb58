#!/usr/bin/env bash
# nbd_fuzz -- see nbd_fuzz.py: random option haggling and random commands
# checked against a model of the export, on the sanitizer-built caskd.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
start_caskd -v
$CASK pool create tank "$T/tank0.vdev" --size 128M
$CASK vol create tank/v --size 8M
CASK_TEST_URI="$NBD/tank/v" CASK_TEST_PORT=$PORT "$PY" "$(dirname "$0")/nbd_fuzz.py"
$CASK vol list -H -o name | grep -qx tank/v
stop_caskd
! grep -q "AddressSanitizer\|runtime error" "$T/caskd.log" || fail "sanitizer report in the caskd log"
! grep -q '^FAKE' "$T/caskd.log" || fail "an export name forged a log line"
! grep -q "$(printf '\033')" "$T/caskd.log" || fail "a raw ESC byte in the caskd log"
grep -q 'FAKE pool tank SUSPENDED\\x1b' "$T/caskd.log" || fail "the hostile names were not logged escaped"
"$CASK_BUILD/cask-debug" check "$T/tank0.vdev" >"$T/check.out" 2>&1 || { cat "$T/check.out"; fail "check"; }
echo ok
