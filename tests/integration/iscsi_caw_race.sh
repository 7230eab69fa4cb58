#!/usr/bin/env bash
# iscsi_caw_race -- COMPARE AND WRITE is atomic against every writer of the volume, through
# the vio range lock (docs/design-vio.md §9): three libnbd writers race two iSCSI sessions
# (two paths to the same LU) doing read + COMPARE AND WRITE on one range; the checker
# (iscsi_caw_race.py) finds no torn range, no state compared away twice, no lost NBD write.
# Run on the sanitizer caskd when it is built.
source "$(dirname "$0")/lib.sh"
"$PY" -c "import nbd" 2>/dev/null || skip "python3-libnbd is not installed"
[ -x "${CASK_ASAN_BUILD:-}/caskd" ] && CASKD="$CASK_ASAN_BUILD/caskd"
IPORT=$(free_port)
start_caskd --iscsi "127.0.0.1:$IPORT"
$CASK pool create tank "$T/tank0.vdev" --size 256M
$CASK vol create tank/v --size 16M
PYTHONPATH="$(dirname "$0")" "$PY" "$(dirname "$0")/iscsi_caw_race.py" "$NBD/tank/v" "$IPORT" \
  iqn.2026-12.io.cask:tank.v > "$T/out" 2>&1 || { cat "$T/out"; fail "COMPARE AND WRITE raced"; }
cat "$T/out"
# the daemon is still whole, and the volume still takes plain IO
$CASK vol list -H -o name | grep -qx "tank/v" || fail "volume gone"
stop_caskd
echo "PASS: iscsi_caw_race"
