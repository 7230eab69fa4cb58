#!/usr/bin/env bash
# nbd_fuzz -- see nbd_fuzz.py: random option haggling and random commands
# checked against a model of the export, on the sanitizer-built caskd.
# Then nbd_fuzz_hostile.py: never-read clients and idle/half-open floods
# against the release caskd (its RSS is checked against the documented
# bound; ASAN's shadow and quarantine would not be caskd's own) started
# with short --stall-timeout, --handshake-timeout and --idle-timeout.
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

mv "$T/caskd.log" "$T/caskd.fuzz.log"
CASKD="$CASK_BUILD/caskd"
start_caskd --stall-timeout 4 --handshake-timeout 2 --idle-timeout 2 --cache 32M
$CASK vol create tank/h --size 64M
"$PY" "$(dirname "$0")/nbd_fuzz_hostile.py" "$PORT" "$CASKD_PID" "$T/caskd.log" 32
kill -0 "$CASKD_PID" || fail "caskd died"
$CASK pool status tank >/dev/null || fail "the control socket does not answer after the hostile clients"
[ -z "$($CASK client list -H)" ] || fail "hostile clients are still connected: $($CASK client list -H)"
stop_caskd
"$CASK_BUILD/cask-debug" check "$T/tank0.vdev" >"$T/check.out" 2>&1 || { cat "$T/check.out"; fail "check"; }
echo ok
