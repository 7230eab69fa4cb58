#!/usr/bin/env bash
# nbd_slow_reader -- a client that never reads its replies is throttled (RSS
# bounded), cut off after --stall-timeout, and others keep being served.
source "$(dirname "$0")/lib.sh"
"$PY" -c 'import nbd' 2>/dev/null || skip "python3-libnbd is not installed"
start_caskd --stall-timeout 5
$CASK pool create tank "$T/tank0.vdev" --size 1G
$CASK vol create tank/v --size 64M
PYTHONPATH="$(dirname "$0")" "$PY" "$(dirname "$0")/nbd_slow_reader.py" "$PORT" "$CASKD_PID" "$T/caskd.log"
kill -0 "$CASKD_PID" || fail "caskd died"
stop_caskd
echo ok
