#!/usr/bin/env bash
# nbd_badreq -- see nbd_badreq.py; this starts caskd for it.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
# The daemon under test is the sanitizer build: hostile input is where it counts.
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
start_caskd
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 64M
CASK_TEST_URI="$NBD/tank/v" CASK_TEST_PORT=$PORT "$PY" "$(dirname "$0")/nbd_badreq.py"
# the daemon is still alive and serving
$CASK vol list -H -o name | grep -qx tank/v
stop_caskd
! grep -q "AddressSanitizer\|runtime error" "$T/caskd.log" || fail "sanitizer report in the caskd log"
